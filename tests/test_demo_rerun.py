"""bin/demo run twice on one DATA_DIR (item 15 of issue 14): the second run keeps the
data, a year switch and the login, says so, and shows phases, not migrate's lines.

One test, as each run installs, migrates and loads (about 10 s): the server is not started."""

import os
import re
import sqlite3
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def demo(data: Path, *args: str) -> str:
    # SQLite in `data`, whatever database the tests themselves run on.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STATE_DATABASE_URL")}
    env.update(DATA_DIR=str(data), DEMO_SIZE="tiny")
    result = subprocess.run(
        [str(ROOT / "bin" / "demo"), "--no-serve", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def password(out: str) -> str:
    return re.search(r" as admin / (\S+)", out).group(1)


def test_it_keeps_the_data_and_the_login_when_run_again_and_resets_only_when_asked(tmp_path):
    data = tmp_path / "data"
    first = demo(data)
    assert "creating databases" in first and "Set up a fresh install." in first
    assert "loaded demo data: 1 district, 670 records" in first
    # The phases, not a wall of migrations; those are in the log the output names.
    assert "Applying" not in first
    assert f"full setup log: {data / 'demo-setup.log'}" in first
    assert "Applying resync.0001" in (data / "demo-setup.log").read_text()

    db = sqlite3.connect(data / "district.sqlite3")
    # What the second run must keep: a switched year, and the records under their history.
    db.execute("UPDATE resync_district SET scope_year = scope_year + 1")
    db.commit()
    records = db.execute("SELECT COUNT(*), MAX(id) FROM resync_districtrecord").fetchone()

    second = demo(data)
    assert "updating databases" in second and "Kept the existing install" in second
    assert "keeping the existing data: 1 district, 670 records, 0 resyncs" in second
    assert "loaded demo data" not in second and "Applying" not in second
    assert password(second) == password(first) and "(kept)" in second
    assert db.execute("SELECT scope_year FROM resync_district").fetchall() == [(2028,)]
    assert db.execute("SELECT COUNT(*), MAX(id) FROM resync_districtrecord").fetchone() == records
    assert (data / "demo-setup.log").read_text().count("=== bin/demo") == 2  # both runs' logs
    db.close()

    # --reset without a terminal: the flag was the question; a fresh install, a fresh login.
    third = demo(data, "--reset")
    assert "deleted the old databases" in third and "Set up a fresh install." in third
    assert password(third) != password(first)
    db = sqlite3.connect(data / "district.sqlite3")
    assert db.execute("SELECT scope_year FROM resync_district").fetchall() == [(2027,)]
    db.close()
