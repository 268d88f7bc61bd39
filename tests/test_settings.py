import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest
import redis
from channels_redis.core import RedisChannelLayer
from django.core.exceptions import ImproperlyConfigured

from statesync import embedded_redis
from statesync.embedded_queue import EmbeddedRedisQueue
from statesync.env import database_url, env_bool, env_int, env_secret, kept_secret, parse_database_url

ROOT = Path(__file__).resolve().parent.parent


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
        "statesync.postgresql",
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


def test_it_reads_a_secret_from_its_file_and_refuses_both_or_a_missing_file(monkeypatch, tmp_path):
    key = tmp_path / "key"
    key.write_text("s3cret:with spaces \n")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("SECRET_KEY_FILE", str(key))
    assert env_secret("SECRET_KEY") == "s3cret:with spaces "  # the line end is not the secret's
    monkeypatch.setenv("SECRET_KEY", "other")
    with pytest.raises(ImproperlyConfigured, match="Set SECRET_KEY or SECRET_KEY_FILE, not both"):
        env_secret("SECRET_KEY")
    monkeypatch.delenv("SECRET_KEY")
    monkeypatch.setenv("SECRET_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY_FILE='.*missing' cannot be read"):
        env_secret("SECRET_KEY")
    key.write_text("\n")
    monkeypatch.setenv("SECRET_KEY_FILE", str(key))
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY_FILE='.*' is empty"):
        env_secret("SECRET_KEY")
    monkeypatch.delenv("SECRET_KEY_FILE")
    monkeypatch.setenv("SECRET_KEY", "plain")
    assert env_secret("SECRET_KEY") == "plain"


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:p%40ss%3Aw%2Fd@db.local:6543/district",
        "postgres://postgres@127.0.0.1/statesync_state",
        "postgres://@/over_the_unix_socket",
        "postgres://u@[::1]:5432/v6",
        "sqlite:////tmp/h4/district.sqlite3",
        "sqlite:///relative/state.sqlite3",
    ],
)
def test_database_url_is_read_back_into_the_same_entry(url):
    entry = parse_database_url("DATABASE_URL", url)
    assert parse_database_url("DATABASE_URL", database_url(entry)) == entry


def test_importing_settings_starts_no_process_and_makes_no_folder(tmp_path):
    data = tmp_path / "data"
    code = "import statesync.settings as s; print(s.REDIS_URL)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={"DATA_DIR": str(data)}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"unix://{data}/redis.sock"
    assert not data.exists()
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(data) in " ".join(p.info["cmdline"] or [])]


def test_a_kept_secret_is_written_when_first_used_and_read_back_after(tmp_path):
    path = tmp_path / "data" / "secret_key"
    secret = kept_secret(path)
    assert not path.parent.exists()  # made, not yet used
    assert len(str(secret)) >= 50 and path.read_text() == str(secret)
    assert str(kept_secret(path)) == str(secret)


def test_the_embedded_redis_server_starts_at_its_first_queue_and_stops():
    data = Path(tempfile.mkdtemp(prefix="ss-redis-"))
    connection = redis.Redis(unix_socket_path=str(embedded_redis.socket_path(data)))
    try:
        assert not embedded_redis.answers(data)
        assert EmbeddedRedisQueue("probe", connection=connection).count == 0  # its first command answered
        assert embedded_redis.answers(data)
    finally:
        assert embedded_redis.stop(data)
    assert not embedded_redis.answers(data)


def test_the_embedded_redis_server_starts_at_its_first_layer_connection_and_stops():
    # A short path of its own: a unix socket's path is at most 107 bytes.
    data = Path(tempfile.mkdtemp(prefix="ss-redis-"))
    layer = RedisChannelLayer(
        hosts=[
            {
                "path": str(embedded_redis.socket_path(data)),
                "connection_class": embedded_redis.StartingConnection,
            }
        ]
    )
    try:
        assert not embedded_redis.answers(data)

        async def roundtrip():
            await layer.send("probe", {"type": "probe"})
            return await layer.receive("probe")

        assert asyncio.run(roundtrip()) == {"type": "probe"}
        assert embedded_redis.answers(data)
    finally:
        assert embedded_redis.stop(data)
    assert not embedded_redis.answers(data)
    assert not (data / "redis.pid").exists()
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(data) in " ".join(p.info["cmdline"] or [])]


# The variables the code reads: Python's typed readers and os.environ, the shell scripts' ${NAME…}.
READS = [
    re.compile(r'\benv_\w+\(\s*"([A-Z][A-Z0-9_]*)"'),
    re.compile(r'os\.environ(?:\.get\(|\[)\s*"([A-Z][A-Z0-9_]*)"'),
    re.compile(r'getenv\(\s*"([A-Z][A-Z0-9_]*)"'),
]
SHELL_READS = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")


def _variables_read() -> dict[str, str]:
    found = {}
    for path in ROOT.rglob("*.py"):
        if {".venv", "data", "migrations"} & set(path.relative_to(ROOT).parts):
            continue
        text = path.read_text()
        for pattern in READS:
            found.update((name, str(path.relative_to(ROOT))) for name in pattern.findall(text))
    for path in [*ROOT.joinpath("bin").iterdir(), ROOT / ".ci" / "run"]:
        found.update((name, str(path.relative_to(ROOT))) for name in SHELL_READS.findall(path.read_text()))
    return found


def _variables_in_readme() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for cell in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)}


def test_the_readme_lists_every_environment_variable_the_code_reads():
    read = _variables_read()
    assert {"SECRET_KEY", "RQ_QUEUE", "PORT", "DEMO_SIZE"} <= set(read)  # the scan finds both kinds
    missing = {name: where for name, where in read.items() if name not in _variables_in_readme()}
    assert not missing, f"Read by the code but not in the README's configuration table: {missing}"


@pytest.mark.django_db(transaction=True, databases=["default", "state"])
def test_it_turns_postgresqls_jit_off_on_both_sides_and_keeps_it_off():
    from django.db import connections, transaction

    if connections["default"].vendor != "postgresql":
        pytest.skip("PostgreSQL's JIT: the SQLite run has none (run under .ci/run)")
    for alias in ("default", "state"):
        connection = connections[alias]
        connection.close()  # a new connection, as every worker thread and request opens
        # Set by a statement, not by a startup parameter PgBouncer would refuse.
        assert "options" not in connection.get_connection_params()
        try:
            with transaction.atomic(using=alias):
                raise RuntimeError("a rolled-back first transaction")
        except RuntimeError:
            pass
        with connection.cursor() as cursor:
            cursor.execute("SHOW jit")
            assert cursor.fetchone() == ("off",), alias
        raw = connection.get_new_connection(connection.get_connection_params())  # the benchmark's floor
        try:
            with raw.cursor() as cursor:
                cursor.execute("SHOW jit")
                assert cursor.fetchone() == ("off",), alias
        finally:
            raw.close()
