"""Real StateSync processes (daphne, RQ workers) started by tests against the test databases."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from statesync.env import child_env  # the one place a child process is pointed at this run's databases

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"  # screenshots and server logs, kept by CI


def start_worker(burst: bool = True, **extra: str) -> subprocess.Popen:
    args = [sys.executable, "manage.py", "rqworker", settings.RQ_QUEUE] + (["--burst"] if burst else [])
    return subprocess.Popen(
        args, cwd=ROOT, env=child_env(**extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def kill_mid_step(step, **extra: str) -> subprocess.Popen:
    """Start a worker, SIGKILL it once it has reported progress on `step` (mid-step), and
    return it, dead. `extra`: its environment (RESYNC_CHUNK small: a long step)."""
    import os
    import signal

    import pytest

    from history.models import StepStatus

    worker = start_worker(**extra)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            step.refresh_from_db()
            if step.status == StepStatus.RUNNING and step.processed > 0:  # a progress write: mid-step
                break
            assert worker.poll() is None, "the worker ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("the step never reported progress")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    return worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, server: subprocess.Popen, failure: str, seconds: float = 30) -> None:
    """Return once `server` listens on loopback `port`; raise `failure` if it ends or takes too long."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(failure) from None
            time.sleep(0.1)


@contextmanager
def serve():
    """daphne and one RQ worker on a free loopback port; yields the base URL."""
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / f"daphne-{port}.log", "w")
    web = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "statesync.asgi:application"],
        cwd=ROOT,
        env=child_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    worker = start_worker(burst=False)
    try:
        wait_for_port(port, web, f"daphne did not start; see {log.name}")
        yield f"http://127.0.0.1:{port}"
    finally:
        for proc in (worker, web):
            proc.terminate()
        for proc in (worker, web):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
