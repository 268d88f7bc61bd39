"""examples/: the example district loads, resyncs and reads back at the state exactly
(issue 13's Done-when), its problem files are refused naming line and field, and every
command of the README's walkthrough really works, run here in the README's order."""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.db import connections
from rest_framework.authtoken.models import Token

from resync import groups
from resync.models import DistrictRecord, StateRecord, SyncField

from .conftest import COMMITTED

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CODE = "001"


def _generator():
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make = _generator()
LOAD_SH = (EXAMPLES / "load.sh").read_text().replace("\\\n", " ")
ORDER = tuple(re.search(r'^ORDER="(.*)"$', LOAD_SH, re.M).group(1).split())
ADD_ARGS = shlex.split(re.search(r"manage\.py add_district (.*?) 2>&1", LOAD_SH).group(1))


def run(*args: str) -> str:
    """A command as the shell runs it: its output, and its refusal as the shell prints it."""
    out = io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=out)
    except CommandError as e:
        raise Refused(out.getvalue() + f"CommandError: {e}\n") from None
    return out.getvalue()


class Refused(Exception):
    """A command exited non-zero; the text is what it printed."""


def load(*extra: str) -> str:
    """examples/load.sh: add the district (once), then import every file in order."""
    try:
        run("add_district", *ADD_ARGS)
    except Refused as e:
        assert "exists already" in str(e)
    return "".join(
        run("import_records", "--district", CODE, "--object", obj, *extra, f"examples/district/{obj}.csv")
        for obj in ORDER
    )


def expected() -> dict[tuple[str, int], tuple]:
    """What the state must hold: every example record, typed by the schema here (not by
    the loader), less the records the rules do not allow."""
    refused = make.not_allowed()
    out = {}
    for obj in ORDER:
        types = dict(SyncField.objects.filter(sync_object__name=obj).values_list("name", "type"))
        with open(EXAMPLES / "district" / f"{obj}.csv", encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                rid = int(row.pop("record_id"))
                year = int(row.pop("school_year")) if "school_year" in row else None
                row.pop("state_excluded", None)
                parents = {k[7:]: int(v) for k, v in row.items() if k.startswith("parent:")}
                payload = {k: typed(types[k], v) for k, v in row.items() if ":" not in k and v != ""}
                if rid not in refused.get(obj, {}):
                    out[obj, rid] = (year, parents, payload)
    return out


def typed(kind: str, text: str):
    if kind == "integer":
        return int(text)
    if kind == "number":
        return int(text) if text.isdigit() else float(text)
    if kind == "boolean":
        return {"true": True, "false": False}[text]
    return text


def state_copy(client, token: str) -> dict[tuple[str, int], tuple]:
    """Every state record of the district through state-records/, following the cursor."""
    got: dict[tuple[str, int], tuple] = {}
    url = f"/api/v1/state-records/?district={CODE}&page_size=500"
    while url:
        r = client.get(url, HTTP_AUTHORIZATION=f"Token {token}")
        assert r.status_code == 200, r.content
        for rec in r.json()["results"]:
            assert (rec["object"], rec["record_id"]) not in got  # each record read once
            got[rec["object"], rec["record_id"]] = (rec["school_year"], rec["parents"], rec["payload"])
        url = r.json()["next"]
    return got


def stamps() -> dict[tuple[str, int], object]:
    return {
        (o, r): at
        for o, r, at in DistrictRecord.objects.values_list("sync_object__name", "record_id", "changed_at")
    }


def state_admin() -> str:
    user = User.objects.create_user("stella", "stella@example.org", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=groups.STATE_ADMINS))
    return Token.objects.create(user=user).key


def test_it_regenerates_the_committed_files(tmp_path):
    make.write(tmp_path)
    for folder in ("district", "problems"):
        written = {p.name: p.read_bytes() for p in (tmp_path / folder).iterdir()}
        committed = {p.name: p.read_bytes() for p in (EXAMPLES / folder).glob("*.csv")}
        assert written == committed, folder
    assert ORDER == make.ORDER  # load.sh loads what the generator writes, in its order


@COMMITTED
def test_it_gives_the_state_exactly_the_example_less_the_not_allowed(
    client, catalog, queue, monkeypatch, tmp_path
):
    monkeypatch.chdir(ROOT)
    load()
    want = expected()
    assert len(want) == 1577 and DistrictRecord.objects.count() == 1592  # as the README says
    with pytest.raises(Refused, match="finished red"):  # TestScore: 9 of 30 refused
        run("resync_run", "--district", CODE, "--all", "--work")
    token = state_admin()
    assert state_copy(client, token) == want  # payloads equal field by field

    # The same files again: nothing written, no changed_at moves.
    before = stamps()
    out = load()
    assert stamps() == before
    for obj in ORDER:
        n = sum(1 for _ in open(EXAMPLES / "district" / f"{obj}.csv")) - 1
        assert f"read {n}, inserted 0, updated 0, unchanged {n}, deleted 0, rejected 0" in out, obj

    # A snapshot without two days deletes them, and the next resync removes exactly those two.
    rows = (EXAMPLES / "district" / "Day.csv").read_text().splitlines(keepends=True)
    gone = {int(rows[5].split(",")[0]), int(rows[400].split(",")[0])}
    snapshot = tmp_path / "Day.csv"
    snapshot.write_text("".join(r for i, r in enumerate(rows) if i not in (5, 400)))
    out = run("import_records", "--district", CODE, "--object", "Day", "--snapshot", str(snapshot))
    assert "read 810, inserted 0, updated 0, unchanged 810, deleted 2, rejected 0" in out
    run("resync_run", "--district", CODE, "Day", "--work")
    assert state_copy(client, token) == {k: v for k, v in want.items() if k not in {("Day", r) for r in gone}}


def test_it_loads_the_examples_with_load_sh_on_a_fresh_install(tmp_path):
    """examples/load.sh itself, as a newcomer runs it: bash, a fresh SQLite install of its own
    (the test databases are not the commands'), then the same script again."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    env |= {"DATA_DIR": str(tmp_path), "PYTHON": sys.executable}

    def sh(*args: str) -> str:
        done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    sh(sys.executable, "manage.py", "migrate", "-v0")
    sh(sys.executable, "manage.py", "migrate", "--database", "state", "-v0")
    first = sh("bash", "examples/load.sh")
    assert "District 001 Adair County of KY, scoped to 2027, with 4 schools." in first
    assert first.count("updated 0, unchanged 0, deleted 0, rejected 0") == len(ORDER)
    again = sh("bash", "examples/load.sh")
    assert "District 001 exists already: loading into it." in again
    assert again.count("inserted 0, updated 0, unchanged") == len(ORDER)


PROBLEMS = {
    "Enrollment.bad-date.csv": "line 13, record 12, field start_date: '2026-08-32' is not a date",
    "PersonIdentity.unknown-field.csv": "line 6, record 5, field nickname: unknown field",
    "CourseCode.missing-required-field.csv": "line 5, record 4, field title: required",
    "Calendar.bad-parent-key.csv": "line 2, record 1, field parents.District: not a parent of Calendar",
    "PersonIdentity.state-locked-field.csv": "line 8, record 7, field state_id: state-locked",
    "TestScore.duplicate-id.csv": "line 11, record 3, field record_id: record 3 appears earlier in this file",
}


def test_it_ships_one_problem_file_per_kind():
    assert sorted(p.name for p in (EXAMPLES / "problems").glob("*.csv")) == sorted(PROBLEMS)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_it_refuses_each_problem_file_naming_line_and_field(name, catalog, monkeypatch):
    monkeypatch.chdir(ROOT)
    obj = name.split(".")[0]
    run("add_district", *ADD_ARGS)
    fixed = f"examples/district/{obj}.csv"
    if "state-locked" in name:  # a state-locked field may be set once, never changed
        run("import_records", "--district", CODE, "--object", obj, fixed)
    before = stamps()
    with pytest.raises(Refused) as refused:
        run("import_records", "--district", CODE, "--object", obj, f"examples/problems/{name}")
    assert PROBLEMS[name] in str(refused.value)
    assert "nothing was written" in str(refused.value) and stamps() == before
    run("import_records", "--district", CODE, "--object", obj, fixed)  # its fix loads


def walkthrough() -> list[str]:
    """The lines of the README's examples section's shell blocks, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Try it with real files: examples/\n", 1)[1].split("\n## ", 1)[0]
    return [line for block in re.findall(r"```sh\n(.*?)```", section, re.S) for line in block.splitlines()]


@COMMITTED
def test_it_runs_every_command_of_the_readme_walkthrough(client, catalog, queue, monkeypatch):
    monkeypatch.chdir(ROOT)
    printed, token, ran = "", "", []
    for line in walkthrough():
        if line.startswith("# "):  # what the command above printed, spaces aside
            assert " ".join(line[2:].split()) in " ".join(printed.split()), line
            continue
        args = shlex.split(line, comments=True)
        ran.append(args[:3])
        if args[0] == "python3" or args[2:3] == ["migrate"]:
            continue  # setting up: the test databases are migrated
        if args[0] == "./examples/load.sh":
            printed = load()
        elif args[0].startswith("T="):
            name = re.search(r"drf_create_token (\w+)", line).group(1)
            token = run("drf_create_token", name).split()[2]
        elif args[0] == "curl":
            r = client.get(
                args[-1].removeprefix("http://127.0.0.1:8000"), HTTP_AUTHORIZATION=f"Token {token}"
            )
            assert r.status_code == 200, (line, r.content)
            printed = b"".join(r.streaming_content).decode() if r.streaming else r.content.decode()
            if "/error-log/" in line:  # the 15 records the state refused, with their reasons
                assert r.json()["count"] == 15
            elif "/export/" in line:  # a header and the 21 scores the state holds
                assert len(printed.splitlines()) == 1 + 21
            else:
                assert [e["record_id"] for e in r.json()["results"]] == [1, 2, 3, 4, 5]
        elif args[0] == "sqlite3":
            with connections["state"].cursor() as cursor:
                cursor.execute(args[2])
                printed = "\n".join("|".join(map(str, row)) for row in cursor.fetchall())
        else:
            assert args[:2] == [".venv/bin/python", "manage.py"], line
            if "# refused" in line:
                with pytest.raises(Refused) as refused:
                    run(*args[2:])
                printed = str(refused.value)
            else:
                printed = run(*args[2:])
    assert [a[2] for a in ran if a[:2] == [".venv/bin/python", "manage.py"]] == [
        "migrate",
        "add_district",
        "import_records",
        "import_records",
        "import_records",
        "resync_run",
        "demo_login",
        "state_views",
    ]
    # The last SELECT counted the state's enrollments by grade: 100 less the excluded one.
    assert sum(int(row.split("|")[1]) for row in printed.splitlines()) == 99
    assert StateRecord.objects.filter(district_code=CODE).count() == 1577
