"""The resync benchmark's parts: a synthetic district, the plain-SQL floor, and
the probes that watch a real resync (worker memory, SQL statements, page
latency, websocket progress). bench/command.py puts them together.

Nothing here is used by a resync itself, and production never imports it;
BenchWorker is an ordinary ResyncWorker that also counts the SQL statements
its jobs send.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg2.extensions
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from resync import demo
from resync.models import District, School, State, StateRecord, SyncObject
from runner import engine
from worker.worker import ResyncWorker

ROOT = Path(__file__).resolve().parent.parent
CODE = "900"  # the benchmark's own district: its records are replaced on every run
FLOOR = "bench_floor"  # the floor's copy of the state table (same columns, indexes and constraints)
STAGE = "bench_floor_stage"
SQL_KEY = "statesync:bench:sql"
# The workers running a job now (BenchWorker), so the benchmark can wait for their counts.
BUSY_KEY = "statesync:bench:busy"


def is_postgres(alias: str) -> bool:
    return connections[alias].vendor == "postgresql"


# The synthetic district ------------------------------------------------------


def _count_rows(district: District, students: int) -> int:
    return sum(1 for _ in demo.Builder(district, students, random.Random(0)).rows())


def _set_schools(district: District, count: int) -> None:
    numbers = [f"{s + 1:03d}" for s in range(count)]
    district.schools.exclude(number__in=numbers).delete()
    for number in numbers:
        School.objects.get_or_create(
            district=district, number=number, defaults={"name": f"Bench School {int(number)}"}
        )


def schools_for(students: int) -> int:
    return max(2, students // 400)  # the demo's own rule: a school per 400 students


def fit_generator(district: District) -> tuple[float, float, float]:
    """The generator's record count as a + b*students + c*schools, from three dry runs.

    Its mix is fixed, so the count is linear in both; one fit serves every
    district of a state, where a fit per district would cost three dry runs each.
    Leaves `district` with two schools.
    """
    _set_schools(district, 4)
    wide = _count_rows(district, 500)
    _set_schools(district, 2)
    one, two = _count_rows(district, 500), _count_rows(district, 1000)
    per_student = (two - one) / 500
    per_school = (wide - one) / 2
    return one - 500 * per_student - 2 * per_school, per_student, per_school


def students_for(records: int, fit: tuple[float, float, float]) -> int:
    """How many students make about `records` (at least 30: the demo's smallest district)."""
    base, per_student, per_school = fit
    students = 30
    for _ in range(2):  # the school count follows the students: settle it in two rounds
        students = max(30, round((records - base - per_school * schools_for(students)) / per_student))
    return students


def bench_district(code: str = CODE, name: str = "Bench County") -> District:
    """A benchmark district (created, or renamed back) in the demo's state."""
    state, _ = State.objects.update_or_create(
        code="KY", defaults={"name": "Commonwealth Department of Education", "edition": "KY"}
    )
    district, _ = District.objects.update_or_create(
        code=code, defaults={"state": state, "name": name, "scope_year": 2027}
    )
    return district


def make_district(
    records: int,
    seed: int = 2027,
    log: Callable[[str], None] = print,
    code: str = CODE,
    name: str = "Bench County",
    fit: tuple[float, float, float] | None = None,
) -> tuple:
    """Create (or refill) a benchmark district with about `records` demo records.

    The demo generator's mix is fixed (students, their records, schools per
    400 students), so dry runs tell how many students make `records` (`fit`,
    when given, saves them). Returns (district, expected, students). On
    PostgreSQL the records go in with COPY (a million in seconds); elsewhere
    through the demo loader.
    """
    district = bench_district(code, name)
    students = students_for(records, fit or fit_generator(district))
    _set_schools(district, schools_for(students))
    started = time.monotonic()
    if is_postgres("default"):
        expected = _copy_district(district, students, seed)
    else:
        expected = demo.load_district(district, students, seed)
    count = sum(expected.processed.values())
    log(
        f"Generated {count:,} records ({students:,} students) for district {code} "
        f"in {time.monotonic() - started:.1f} s"
    )
    return district, expected, students


def _copy_district(district: District, students: int, seed: int) -> demo.Expected:
    ids = dict(SyncObject.objects.values_list("name", "id"))
    builder = demo.Builder(district, students, random.Random(f"{seed}-{district.code}"))
    now = timezone.now().isoformat()
    dumps, copy_text = json.dumps, engine.copy_text
    with transaction.atomic(), connections["default"].cursor() as cursor:
        cursor.execute("DELETE FROM resync_districtrecord WHERE district_id = %s", [district.pk])
        buffer: list[str] = []

        def flush() -> None:
            data = io.StringIO("".join(buffer))
            cursor.cursor.copy_expert(
                "COPY resync_districtrecord (district_id, sync_object_id, school_year, record_id, "
                "parent_ids, payload, state_excluded, changed_at) FROM STDIN",
                data,
                size=1 << 18,
            )
            buffer.clear()

        for r in builder.rows():
            year = "\\N" if r.year is None else r.year
            buffer.append(
                f"{district.pk}\t{ids[r.obj]}\t{year}\t{r.record_id}\t{copy_text(dumps(r.parents))}\t"
                f"{copy_text(dumps(r.payload))}\t{'t' if r.excluded else 'f'}\t{now}\n"
            )
            if len(buffer) >= 50_000:
                flush()
        flush()
    with connections["default"].cursor() as cursor:
        cursor.execute("ANALYZE resync_districtrecord")
    return builder.expected


def clear_state(district: District) -> None:
    """Remove the district from the state side, so the next resync is a first load."""
    StateRecord.objects.filter(district_code=district.code).delete()
    vacuum("state", "resync_staterecord")


def vacuum(alias: str, table: str) -> None:
    """Tidy a table between timed runs so each starts from the same shape (not timed)."""
    with connections[alias].cursor() as cursor:
        cursor.execute(f'VACUUM ANALYZE "{table}"' if is_postgres(alias) else "ANALYZE")


# The floor: the same records moved by plain SQL alone ------------------------


def _raw(alias: str):
    """A fresh DB-API connection of its own, outside Django's transaction handling."""
    wrapper = connections[alias]
    return wrapper.get_new_connection(wrapper.get_connection_params())


def add_common_arguments(parser, records_help: str) -> None:
    """The arguments both benchmarks take, in the same words."""
    parser.add_argument("--records", type=int, required=True, help=records_help)
    parser.add_argument("--workers", type=int, default=1, help="RQ worker processes (default 1).")
    parser.add_argument("--json", dest="json_path", help="Also write the figures as JSON to this path.")
    parser.add_argument(
        "--repeat", type=int, help="Timed runs of each kind, medians reported (default 3, 1 above 200k)."
    )
    parser.add_argument("--seed", type=int, default=2027)
    parser.add_argument(
        "--no-latency", action="store_true", help="Skip the web server and the page latency loop."
    )


def check_migrated() -> None:
    """Refuse to measure a database its migrations have not all reached, naming the
    command to run: its tables would be missing, or of an earlier shape (a column the
    code writes, not there, fails the run half-way)."""
    from django.core.management.base import CommandError
    from django.db.migrations.executor import MigrationExecutor

    for alias, fix in (
        ("default", "python manage.py migrate"),
        ("state", "python manage.py migrate --database state"),
    ):
        executor = MigrationExecutor(connections[alias])
        todo = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if todo:
            names = ", ".join(f"{m.app_label}.{m.name}" for m, _backwards in todo[:3])
            more = ", …" if len(todo) > 3 else ""
            raise CommandError(
                f"The {alias!r} database is not migrated ({len(todo)} to apply: {names}{more}): run `{fix}`."
            )


def rounds(records: int, repeat: int | None, json_path: str | None) -> int:
    """Both benchmarks' own arguments checked alike (CommandError naming the one at
    fault), and how many timed rounds to run: `repeat`, else 3, 1 above 200k records."""
    from django.core.management.base import CommandError

    if records < 1000:
        raise CommandError(f"--records {records}: give at least 1000.")
    if repeat is not None and repeat < 1:
        raise CommandError(f"--repeat {repeat}: give at least 1.")
    if json_path and not Path(json_path).resolve().parent.is_dir():
        raise CommandError(f"--json {json_path}: its folder does not exist.")
    return repeat or (3 if records <= 200_000 else 1)


class Floor:
    """The floor for one district or a whole state's: one statement set moves them all."""

    def __init__(self, districts: District | list[District]):
        self.districts = districts if isinstance(districts, list) else [districts]

    def prepare(self) -> None:
        """Create the floor's copy of the state table and its staging table, empty."""
        conn = _raw("state")
        try:
            if is_postgres("state"):
                with conn.cursor() as cur:
                    cur.execute(f"DROP TABLE IF EXISTS {FLOOR}, {STAGE}")
                    cur.execute(f"CREATE TABLE {FLOOR} (LIKE resync_staterecord INCLUDING ALL)")
                    cur.execute(
                        f"CREATE UNLOGGED TABLE {STAGE} (district_code varchar(16), school_year smallint, "
                        "record_id bigint, parent_ids jsonb, payload jsonb, sync_object varchar(64))"
                    )
            else:
                cur = conn.cursor()
                cur.execute(f"DROP TABLE IF EXISTS {FLOOR}")
                ddl = cur.execute(
                    "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'resync_staterecord' "
                    "AND sql IS NOT NULL ORDER BY type DESC"
                ).fetchall()
                for name, sql in ddl:  # the table first ("table" > "index"), then its indexes
                    sql = sql.replace('"resync_staterecord"', f'"{FLOOR}"')
                    if name != "resync_staterecord":
                        sql = sql.replace(f'"{name}"', f'"{FLOOR}_{name}"', 1)
                    cur.execute(sql)
            conn.commit()
        finally:
            conn.close()

    def empty(self) -> None:
        conn = _raw("state")
        try:
            conn.cursor().execute(f"DELETE FROM {FLOOR}")
            conn.commit()
        finally:
            conn.close()
        vacuum("state", FLOOR)

    def drop(self) -> None:
        conn = _raw("state")
        try:
            cur = conn.cursor()
            cur.execute(f"DROP TABLE IF EXISTS {FLOOR}")
            if is_postgres("state"):
                cur.execute(f"DROP TABLE IF EXISTS {STAGE}")
            conn.commit()
        finally:
            conn.close()

    def run(self) -> float:
        """Move the districts' records to the floor table once; return the seconds it took."""
        started = time.perf_counter()
        if is_postgres("state"):
            self._run_postgres()
        else:
            self._run_sqlite()
        return time.perf_counter() - started

    def _select(self) -> str:
        # The code comes with each record, as the state table keys on it (a join with a
        # table of a few rows: the one-district floor pays next to nothing for it).
        ids = ", ".join(str(int(d.pk)) for d in self.districts)
        return (
            "SELECT d.code AS district_code, r.school_year, r.record_id, r.parent_ids, r.payload, "
            "o.name AS sync_object FROM resync_districtrecord r "
            "JOIN resync_syncobject o ON o.id = r.sync_object_id "
            f"JOIN resync_district d ON d.id = r.district_id WHERE r.district_id IN ({ids})"
        )

    def _upsert(self, source: str, now: str) -> str:
        return (
            f"INSERT INTO {FLOOR} (district_code, sync_object, school_year, record_id, parent_ids, "
            f"payload, step, synced_at) SELECT district_code, sync_object, school_year, "
            f"record_id, parent_ids, payload, 0, {now} FROM {source} WHERE true "
            "ON CONFLICT (district_code, sync_object, record_id) DO UPDATE SET "
            "school_year = excluded.school_year, parent_ids = excluded.parent_ids, "
            "payload = excluded.payload, step = excluded.step, synced_at = excluded.synced_at"
        )

    def _run_postgres(self) -> None:
        # COPY out of the district and into the staging table run at once, through a pipe.
        source, target = _raw("default"), _raw("state")
        try:
            read_fd, write_fd = os.pipe()
            failure: list[BaseException] = []

            def copy_out() -> None:
                try:
                    with os.fdopen(write_fd, "wb", buffering=1 << 20) as pipe:
                        source.cursor().copy_expert(f"COPY ({self._select()}) TO STDOUT", pipe)
                except BaseException as e:  # surfaced below, after the reader ends
                    failure.append(e)

            cur = target.cursor()
            cur.execute(f"TRUNCATE {STAGE}")
            reader = threading.Thread(target=copy_out)
            reader.start()
            with os.fdopen(read_fd, "rb", buffering=1 << 20) as pipe:
                cur.copy_expert(f"COPY {STAGE} FROM STDIN", pipe, size=1 << 18)
            reader.join()
            if failure:
                raise failure[0]
            cur.execute(self._upsert(STAGE, "now()"))
            target.commit()
        finally:
            source.close()
            target.close()

    def _run_sqlite(self) -> None:
        conn = _raw("state")
        try:
            conn.execute("ATTACH DATABASE ? AS district", [str(connections["default"].settings_dict["NAME"])])
            select = self._select().replace("resync_districtrecord", "district.resync_districtrecord")
            select = select.replace("resync_syncobject", "district.resync_syncobject")
            select = select.replace("resync_district ", "district.resync_district ")
            conn.execute("BEGIN")
            conn.execute(self._upsert(f"({select})", "strftime('%Y-%m-%d %H:%M:%f', 'now')"))
            conn.commit()
        finally:
            conn.close()


# Probes that watch a running resync ---------------------------------------------


class CopyCountingCursor(psycopg2.extensions.cursor):
    """A psycopg2 cursor that counts its COPY statements.

    The engine's COPY goes to the driver's own cursor (copy_expert), around
    Django's cursor wrapper, so no execute_wrapper sees it; every connection the
    worker opens (the state side's thread too) makes its cursors of this class.
    """

    count = 0
    _lock = threading.Lock()

    def copy_expert(self, *args, **kwargs):
        with CopyCountingCursor._lock:
            CopyCountingCursor.count += 1
        return super().copy_expert(*args, **kwargs)


class BenchWorker(ResyncWorker):
    """A ResyncWorker that counts the SQL statements of its jobs into Redis.

    Ordinary statements are counted by a connection execute_wrapper on both
    aliases, COPY by the cursor class the state connections are opened with.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if is_postgres("state"):
            # Django passes OPTIONS to psycopg2.connect(); every thread's connection reads this dict.
            connections["state"].settings_dict["OPTIONS"]["cursor_factory"] = CopyCountingCursor
            connections["state"].close()  # one opened before would keep the plain cursor

    def execute_job(self, job, queue):
        counts = {"default": 0, "state": 0}
        copies_before = CopyCountingCursor.count

        def counter(alias: str):
            def wrapper(execute, sql, params, many, context):
                counts[alias] += 1
                return execute(sql, params, many, context)

            return wrapper

        self.connection.sadd(BUSY_KEY, self.name)
        try:
            with (
                connections["default"].execute_wrapper(counter("default")),
                connections["state"].execute_wrapper(counter("state")),
            ):
                return super().execute_job(job, queue)
        finally:
            counts["copy"] = CopyCountingCursor.count - copies_before
            pipe = self.connection.pipeline()
            for key, value in counts.items():
                pipe.hincrby(SQL_KEY, key, value)
            pipe.srem(BUSY_KEY, self.name)
            pipe.execute()


def take_turns(
    floor: Floor,
    pool: Workers,
    probes,
    repeat: int,
    resync: Callable[[], dict],
    clear: Callable[[], None],
    log: Callable[[str], None],
) -> tuple[list[float], list[float], dict[str, list[dict]]]:
    """The floor and StateSync in turn, round by round (floor first load and reload,
    then StateSync's: `resync()` runs one), so a neighbour's load on a shared machine
    weighs on both sides of each ratio alike; the idle pages are timed between
    StateSync's two runs. Returns (floor firsts, floor reloads, StateSync's runs)."""
    firsts, reloads = [], []
    runs: dict[str, list[dict]] = {"first": [], "reload": []}
    try:
        floor.prepare()
        probes.start()
        pool.start()
        for i in range(repeat):
            floor.empty()
            firsts.append(floor.run())
            vacuum("state", FLOOR)
            reloads.append(floor.run())
            floor.empty()  # out of the state's cache and disk before StateSync's turn
            if i:
                clear()
            runs["first"].append(resync())
            probes.idle(runs["first"][-1]["request"])
            vacuum("state", "resync_staterecord")
            runs["reload"].append(resync())
            log(
                f"  round {i + 1}: floor first {firsts[-1]:.2f} s, reload {reloads[-1]:.2f} s; "
                f"StateSync first {runs['first'][-1]['seconds']:.2f} s, "
                f"reload {runs['reload'][-1]['seconds']:.2f} s"
            )
    finally:
        floor.drop()
        pool.stop()
        probes.stop()
    return firsts, reloads, runs


def wait_for_counts(redis, seconds: float = 30) -> None:
    """Wait until no worker runs a job, so every job's SQL counts are in SQL_KEY: a request
    finishes inside its last job (a one-job request inside its only one), before the
    job writes its counts."""
    deadline = time.monotonic() + seconds
    while redis.scard(BUSY_KEY) and time.monotonic() < deadline:
        time.sleep(0.02)


@dataclass
class Workers:
    """K real worker processes (`manage.py rqworker`), their peak memory sampled."""

    count: int
    env: dict
    procs: list[subprocess.Popen] = field(default_factory=list)
    peak_rss: dict[int, int] = field(default_factory=dict)
    cpu: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        import django_rq
        from rq import Worker

        queue = django_rq.get_queue(settings.RQ_QUEUE)
        if any(_alive(w) for w in Worker.all(queue=queue)):
            raise RuntimeError(
                f"Workers already listen on queue {settings.RQ_QUEUE!r}: stop them (or set RQ_QUEUE "
                "to a queue of the benchmark's own) so they do not take the benchmark's jobs."
            )
        for _ in range(self.count):
            # Not --burst: a burst worker leaves as soon as the queue is empty, which
            # happens between two layers; the benchmark stops them once it is done.
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "manage.py",
                        "rqworker",
                        settings.RQ_QUEUE,
                        "--worker-class",
                        "bench.parts.BenchWorker",
                    ],
                    cwd=ROOT,
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 60
        while sum(1 for w in Worker.all(queue=queue) if _alive(w)) < self.count:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"A worker exited at start with code {p.returncode}.")
            if time.monotonic() > deadline:
                raise RuntimeError("The workers did not register with Redis within 60 s.")
            time.sleep(0.1)
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        handles = {p.pid: psutil.Process(p.pid) for p in self.procs}
        while not self._stop.is_set():
            for pid, h in handles.items():
                try:
                    self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), h.memory_info().rss)
                    self.cpu[pid] = sum(h.cpu_times()[:2])
                except psutil.NoSuchProcess:
                    pass
            self._stop.wait(0.1)

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def cpu_seconds(self) -> float:
        """User + system CPU the workers have used so far."""
        total = 0.0
        for p in self.procs:
            try:
                total += sum(psutil.Process(p.pid).cpu_times()[:2])
            except psutil.NoSuchProcess:
                total += self.cpu.get(p.pid, 0.0)
        return total

    def stop(self) -> None:
        for p in self.procs:
            # The kernel's high-water mark catches a peak between two samples.
            try:
                status = Path(f"/proc/{p.pid}/status").read_text()
                hwm = next(
                    int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM")
                )
                self.peak_rss[p.pid] = max(self.peak_rss.get(p.pid, 0), hwm)
            except (OSError, StopIteration):
                pass
        self._stop.set()
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _alive(worker) -> bool:
    """A registered worker that still runs (a worker killed mid-job stays registered for hours)."""
    if worker.hostname != socket.gethostname():
        return True
    return psutil.pid_exists(worker.pid)


def postgres_cpu_seconds() -> float | None:
    """CPU seconds used so far by this machine's PostgreSQL server, ended backends included.

    Backends come and go with connections; the postmaster's children times
    keep what the ended ones used. Other clients of the server count too.
    """
    total, seen = 0.0, False
    for p in psutil.process_iter(["name", "ppid", "cpu_times"]):
        times = p.info["cpu_times"]
        if p.info["name"] not in ("postgres", "postmaster") or times is None:
            continue
        seen = True
        total += times.user + times.system
        try:
            is_postmaster = psutil.Process(p.info["ppid"]).name() not in ("postgres", "postmaster")
        except psutil.Error:
            is_postmaster = False
        if is_postmaster:
            total += times.children_user + times.children_system
    return total if seen else None


class Progress:
    """Listens to the state group on the channel layer, as the tool page's websocket does."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    async def _listen(self) -> None:
        from channels.layers import get_channel_layer

        from core import events

        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(events.STATE_GROUP, channel)
        self._ready.set()
        try:
            while not self._stop.is_set():
                try:
                    message = await asyncio.wait_for(layer.receive(channel), 0.5)
                except TimeoutError:
                    continue
                if message.get("type") in ("step.status", "steps.status"):  # one or several steps
                    self.times.append(time.monotonic())
        finally:
            await layer.group_discard(events.STATE_GROUP, channel)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def gaps(self, start: float, end: float) -> dict:
        """Messages and the gaps between them (including from start and to end) within a run."""
        inside = [t for t in self.times if start <= t <= end]
        marks = [start, *inside, end]
        gaps = [b - a for a, b in zip(marks, marks[1:], strict=False)]
        longest = max(range(len(gaps)), key=gaps.__getitem__) if gaps else None
        return {
            "messages": len(inside),
            "median_gap_s": statistics.median(gaps) if gaps else None,
            "max_gap_s": gaps[longest] if gaps else None,
            # Where the longest silence began, from the run's start: before the first push
            # (a request being sent), amid the steps, or after the last one.
            "max_gap_from_s": marks[longest] - start if gaps else None,
        }


class WebServer:
    """daphne on a loopback port, serving the app as in production (DEBUG off)."""

    def __init__(self, env: dict):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "statesync.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("daphne did not start on a loopback port.") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Pages:
    """GETs pages with a logged-in session over one keep-alive connection, timing each."""

    def __init__(self, port: int, session: str, paths: dict[str, str]):
        self.port, self.session, self.paths = port, session, paths
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def get(self, conn: http.client.HTTPConnection, name: str) -> float:
        started = time.perf_counter()
        conn.request("GET", self.paths[name], headers={"Cookie": f"sessionid={self.session}"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {self.paths[name]} answered {response.status}, not 200.")
        elapsed = time.perf_counter() - started
        self.samples[name].append((time.monotonic(), elapsed))
        return elapsed

    def idle(self, rounds: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        for _ in range(rounds):
            for name in self.paths:
                self.get(conn, name)
        conn.close()

    def loop(self, pause: float = 0.2) -> None:
        def run() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            while not self._stop.is_set():
                for name in self.paths:
                    self.get(conn, name)
                self._stop.wait(pause)
            conn.close()

        self._stop.clear()
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(60)
