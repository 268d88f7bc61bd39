import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from statesync.env import env_bool, env_int, parse_database_url


def test_it_refuses_a_bad_boolean_naming_the_variable(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="DEBUG='maybe' is not a boolean"):
        env_bool("DEBUG", False)


def test_it_refuses_a_bad_number_naming_the_variable(monkeypatch):
    monkeypatch.setenv("RESYNC_CHUNK", "lots")
    with pytest.raises(ImproperlyConfigured, match="RESYNC_CHUNK='lots' is not a whole number"):
        env_int("RESYNC_CHUNK", 10)
    monkeypatch.setenv("RESYNC_CHUNK", "0")
    with pytest.raises(ImproperlyConfigured, match="RESYNC_CHUNK=0 is below the minimum of 1"):
        env_int("RESYNC_CHUNK", 10, minimum=1)
    monkeypatch.setenv("RESYNC_WORKER_NICE", "20")
    with pytest.raises(ImproperlyConfigured, match="RESYNC_WORKER_NICE=20 is above the maximum of 19"):
        env_int("RESYNC_WORKER_NICE", 10, minimum=0, maximum=19)


def test_it_parses_postgres_and_refuses_other_schemes():
    db = parse_database_url("DATABASE_URL", "postgres://u:p%40ss@db.local:6543/district")
    assert (db["ENGINE"], db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "django.db.backends.postgresql",
        "district",
        "u",
        "p@ss",
        "db.local",
        "6543",
    )
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL='mysql://x/y' has an unsupported scheme"):
        parse_database_url("DATABASE_URL", "mysql://x/y")
    with pytest.raises(ImproperlyConfigured, match="names no database"):
        parse_database_url("STATE_DATABASE_URL", "postgres://host/")


def _start(env: dict) -> subprocess.CompletedProcess:
    code = "import django; django.setup()"
    full = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STATE_DATABASE_URL")}
    full.update(env, DJANGO_SETTINGS_MODULE="statesync.settings")
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True)


def test_it_refuses_to_start_with_one_database_for_both_sides():
    url = "postgres://postgres@127.0.0.1:5432/same"
    result = _start({"DATABASE_URL": url, "STATE_DATABASE_URL": url})
    assert result.returncode != 0
    assert "name the same database" in result.stderr


def test_it_refuses_to_start_with_only_one_database_url():
    result = _start({"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x"})
    assert result.returncode != 0
    assert "Set both DATABASE_URL and STATE_DATABASE_URL" in result.stderr
