"""A one-job request's layer, its steps side by side on a worker's lanes.

A step's time goes to the database half the time (the district's read, the state's
upsert and commit) and to the worker's Python the other half (judging, encoding).
Run one after another, each waits for the other; on RESYNC_JOB_LANES threads, one
step's commit overlaps the next one's judging, and both of the server's cores work
(issue 16: a one-job request of 100,000 records took 3.1 s one step at a time).

The steps of one layer are siblings: none reads what another writes, so their order
does not matter, and each is still claimed, run, counted and ended by
lifecycle.run_step in its own state transaction. A lane is a thread of the worker
that lives as long as it does: its database connections serve job after job, as
the worker's own do (jobs.keep_connections).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

from django.db import connections

from runner import engine, jobs

_local = threading.local()


def _lanes(count: int) -> list[ThreadPoolExecutor]:
    """The calling thread's first `count` lanes, started when first needed."""
    have = _local.__dict__.setdefault("lanes", [])
    while len(have) < count:
        have.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"resync-lane-{len(have) + 1}"))
    return have[:count]


def run_all(ids: list[int], run: Callable[[int], None], lanes: int) -> None:
    """Call run(id) for every id, in their order, on the calling thread and up to
    `lanes` - 1 more. Returns once every call has returned. If one raises (a database
    gone, in a claim), or the calling thread is interrupted (a worker's cold shutdown,
    RQ's job timeout: signal handlers raise on the main thread), no lane starts
    another, and the first error is raised here once those running have finished:
    a step a lane still runs must not look orphaned (worker.orphaned_here) and be
    queued again while it runs."""
    todo = collections.deque(ids)  # popleft is atomic: no id runs twice
    stopped = threading.Event()

    def drain() -> None:
        try:
            while not stopped.is_set():
                try:
                    step_id = todo.popleft()
                except IndexError:
                    return
                run(step_id)
        except BaseException:
            stopped.set()
            raise

    # Instrumentation on the caller's connections (execute_wrapper) sees the lanes' statements too.
    wrappers = {alias: list(connections[alias].execute_wrappers) for alias in connections}
    helpers = [lane.submit(_on_lane, drain, wrappers) for lane in _lanes(min(lanes, len(ids)) - 1)]
    failure: BaseException | None = None
    try:
        drain()
    except BaseException as e:
        failure = e
    while not all(helper.done() for helper in helpers):
        try:
            wait(helpers)
        except BaseException as e:  # a second signal while waiting: still wait
            stopped.set()
            failure = failure or e
    if failure is not None:
        raise failure
    for helper in helpers:
        helper.result()


def _on_lane(drain: Callable[[], None], wrappers: dict[str, list]) -> None:
    try:
        # A kept connection the server cut while the lane idled is replaced, not found broken.
        jobs.reset_connections()
        for alias, found in wrappers.items():
            connections[alias].execute_wrappers[:] = found
        drain()
    finally:
        for alias in wrappers:
            connections[alias].execute_wrappers.clear()
        if not jobs.keep_connections:
            _close_here()


def _close_here() -> None:
    connections.close_all()
    engine.close_state_connections()


def close() -> None:
    """Close the database connections of the calling thread's lanes (a worker that
    stops, or forks RQ's scheduler: they would outlive it, or be shared)."""
    for lane in getattr(_local, "lanes", []):
        lane.submit(_close_here).result()
