"""The live bus: events over the Channels layer, always sent after the commit that caused them.

Whatever changes a step, a verification run or an inbox calls `send` with the
groups below; the sockets (live.consumers) join the groups their user may hear.
The bus knows group names only, never rights: who may join which group is the
consumer's to decide.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)

STATE_GROUP = "state"


def district_group(district_id: int) -> str:
    return f"district.{district_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


# Verification runs have a right of their own (Verification Summary R) on top of the
# district right: their events travel in groups apart, joined only by users holding it.
VERIFICATION_STATE_GROUP = "verification.state"


def verification_group(district_id: int) -> str:
    return f"verification.{district_id}"


def verification_groups(district_id: int) -> list[str]:
    """Where a verification run of `district_id` is pushed: the state, and the district."""
    return [VERIFICATION_STATE_GROUP, verification_group(district_id)]


def session_group(session_key: str) -> str:
    """The sockets opened by one login session, so its logout can close them. A digest,
    not the key: Redis (and anyone reading it) must not learn a usable session key."""
    return "session." + hashlib.sha256(session_key.encode()).hexdigest()[:40]


# Sent to a user's group when their rights may have changed, and to a session's group
# when it ended: the consumer re-checks (or closes), nothing reaches the browser.
RIGHTS_CHANGED = {"type": "rights.changed"}
SESSION_ENDED = {"type": "session.ended"}


# A worker's own event loop (start_loop), on a thread of its own: every push goes
# through it, so the channel layer's Redis connections (channels-redis keeps them per
# event loop) outlive one push. Through async_to_sync each push paid a new loop and a
# new Redis connection: about 7 ms, three times a step (measured, issue 16).
#
# The pushes wait in the loop's outbox and go out one after another, in the order they
# were sent: the sender does not wait for Redis (a push's round trips cost a small step
# as much as its records, issue 16), and stop_loop delivers what is left.
_loop: asyncio.AbstractEventLoop | None = None
_loop_thread: threading.Thread | None = None
_outbox: asyncio.Queue | None = None
_sender: concurrent.futures.Future | None = None
PUSH_TIMEOUT_SECONDS = 10


def start_loop() -> None:
    """Push through one long-lived event loop from now on (a worker process calls this)."""
    global _loop, _loop_thread, _outbox, _sender
    if _loop is not None:
        return
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=_run, args=(loop,), name="events-loop", daemon=True)
    thread.start()
    _outbox = asyncio.run_coroutine_threadsafe(_new_outbox(), loop).result()
    _sender = asyncio.run_coroutine_threadsafe(_send_outbox(_outbox), loop)
    _loop, _loop_thread = loop, thread


async def _new_outbox() -> asyncio.Queue:
    return asyncio.Queue()


async def _send_outbox(outbox: asyncio.Queue) -> None:
    """Deliver the outbox's pushes in order until stop_loop's None."""
    while (item := await outbox.get()) is not None:
        layer, groups, message = item
        try:
            await asyncio.wait_for(_deliver(layer, groups, message), PUSH_TIMEOUT_SECONDS)
        except TimeoutError:  # Redis hangs: this push is dropped, the next ones still go
            log.error("could not push %s within %s s", message.get("type"), PUSH_TIMEOUT_SECONDS)


def _run(loop: asyncio.AbstractEventLoop) -> None:
    # Closed on its own thread once stopped: channels-redis wraps close() to run a last
    # flush on the loop, which fails on a thread that runs a loop of its own (the
    # Playwright tests' main thread does).
    try:
        loop.run_forever()
    finally:
        loop.close()


def stop_loop() -> None:
    """Back to a loop per push, once the outbox is delivered; the long-lived loop's Redis
    connections are closed."""
    global _loop, _loop_thread, _outbox, _sender
    loop, thread, outbox, sender = _loop, _loop_thread, _outbox, _sender
    _loop = _loop_thread = _outbox = _sender = None
    if loop is None:
        return
    loop.call_soon_threadsafe(outbox.put_nowait, None)
    try:
        sender.result(PUSH_TIMEOUT_SECONDS + 5)
    except Exception:
        log.exception("could not deliver the pushes left in the outbox")
    layer = get_channel_layer()
    if layer is not None and hasattr(layer, "close_pools"):
        try:
            asyncio.run_coroutine_threadsafe(layer.close_pools(), loop).result(PUSH_TIMEOUT_SECONDS)
        except Exception:
            log.exception("could not close the channel layer's connections")
    loop.call_soon_threadsafe(loop.stop)
    thread.join()


def send(groups: list[str], message: dict[str, Any]) -> None:
    """Send `message` to each group once the current transaction commits."""
    send_all([(groups, message)])


def send_all(pushes: list[tuple[list[str], dict[str, Any]]]) -> None:
    """Send each (groups, message), in order, once the current transaction commits: one
    trip to the channel layer for all of them (a state request alerts a hundred inboxes,
    and a trip through async_to_sync costs about 3 ms, issue 16)."""
    if not pushes:
        return

    def deliver() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        loop, outbox, sender = _loop, _outbox, _sender
        # A sender that ended (it never should: _deliver swallows a push's failures)
        # would leave every later push in the outbox: push the slow way instead.
        if loop is not None and outbox is not None and sender is not None and not sender.done():
            try:
                for groups, message in pushes:
                    loop.call_soon_threadsafe(outbox.put_nowait, (layer, groups, message))
                return
            except RuntimeError:  # the loop closed in between (stop_loop on another thread)
                pass
        # One trip through async_to_sync for them all: each trip costs an event loop
        # and a Redis connection, paid on every step and progress write.
        push = async_to_sync(_deliver_all)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            push(layer, pushes)
            return
        # Synchronous code under a running event loop (DJANGO_ALLOW_ASYNC_UNSAFE, as
        # Playwright's sync API runs it), where async_to_sync refuses: a thread of its own.
        thread = threading.Thread(target=push, args=(layer, pushes))
        thread.start()
        thread.join()

    transaction.on_commit(deliver)


async def _deliver_all(layer, pushes: list[tuple[list[str], dict[str, Any]]]) -> None:
    for groups, message in pushes:
        await _deliver(layer, groups, message)


async def _deliver(layer, groups: list[str], message: dict[str, Any]) -> None:
    for group in groups:
        try:
            await layer.group_send(group, message)
        except Exception:  # a live push must never break a resync
            log.exception("could not push %s to %s", message.get("type"), group)
