"""The test run's embedded redis-server: stopped when the run ends, if the run started it.

With no REDIS_URL the tests' first connection starts the embedded redis-server
(statesync/embedded_redis.py), and it runs detached: without this it outlived
every run. One already answering when the run began belongs to someone else (a
demo on the same DATA_DIR) and is left running. Under pytest-xdist only the
controller, whose session ends after every worker's, stops it.
"""

from pathlib import Path

import pytest

STARTED_HERE = pytest.StashKey[Path | None]()


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    from django.conf import settings

    from statesync import embedded_redis

    data_dir = settings.DATA_DIR if settings.EMBEDDED_REDIS else None
    already = data_dir is None or embedded_redis.answers(data_dir)
    session.config.stash[STARTED_HERE] = None if already else data_dir


def pytest_sessionfinish(session: pytest.Session) -> None:
    from statesync import embedded_redis

    data_dir = session.config.stash.get(STARTED_HERE, None)
    if data_dir is not None and not _is_xdist_worker(session.config):
        embedded_redis.stop(data_dir)
