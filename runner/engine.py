"""Move one step's records to the state and count them: one object of one request.

Only the moving: a step's life cycle (claimed, finished, failed, queued again)
is runner.lifecycle's, which calls move_records once it has claimed the step.

The district's records of the object stream in chunks by primary key (flat
memory whatever the district's size). Each chunk is judged by resync.rules
against a context gathered in a few set-based queries, the valid records are
upserted into the state store, the others land in the Error Log. The state
side is written in one transaction per step, so a step killed half-way leaves
the state as it was and a re-run converges to the same data.

Speed (see the README's Benchmark): records travel as the JSON text the
database hands over, only the parent ids are decoded (the rules need them) and
a payload only if a rule reads it. The state side runs on a thread of its own
(StateSide), so the database writes one batch while the worker judges the
next. A batch goes into a temporary staging table (COPY on PostgreSQL, the
way the database itself loads fastest; executemany on SQLite) and is upserted
with one INSERT … ON CONFLICT; RESYNC_WRITE=orm keeps the ORM's bulk upsert
as the reference the tests hold this path to.
"""

from __future__ import annotations

import io
import json
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from history.models import DISBatchHistory, ErrorLog
from resync import rules
from resync.models import DistrictRecord, StateRecord, SyncObject, record_scope
from runner import jobs

log = logging.getLogger(__name__)

# A running step's progress is written after its first full chunk, then at
# most once a chunk (RESYNC_CHUNK records) and once every PROGRESS_SECONDS, and
# by a heartbeat whenever the step has been silent that long (see RunningCounts).
PROGRESS_SECONDS = 0.5
# The state side writes the chunks that wait for it together, up to this many
# records: each write costs a few statements whatever its size.
WRITE_ROWS = 10_000
# A step of a parent object that writes at least this many records, either its
# object's first for the district or a fifth of the state store or more, refreshes
# the store's statistics (see refresh_statistics). Not fewer: that ANALYZE took 0.3 s
# next to a million records of other districts (a fifth of a 100,000-record district's
# first load, issue 16), while a stale plan costs at most one scan of the parent's
# records per chunk of its children, which below this many is cheaper.
ANALYZE_ROWS = 20_000
# A chunk's row is a plain tuple (one per record, nothing more allocated), its
# fields at these positions: the parent ids decoded, the payload as JSON text,
# and the parent ids also as text (what the state side writes).
ID, RECORD_ID, PARENT_IDS, PAYLOAD, STATE_EXCLUDED, SCHOOL_YEAR, PARENT_IDS_TEXT = range(7)
# The district records of other objects a step of an object reads while it runs
# (blocked_tests, enrolled_students, context): a load of those waits for the step
# too (loads.actions.running_readers), so the step sees none of it or all of it.
DISTRICT_READS = {"TestScore": ("Test", "Enrollment")}


def scope(step: DISBatchHistory) -> tuple[QuerySet[DistrictRecord], QuerySet[StateRecord]]:
    """(district records, state records) the step moves: resync.models.record_scope of its
    object, district and year, narrowed to a Selective Sync's records."""
    return record_scope(step.district, step.sync_object, step.school_year, step.request.records)


def chunks(qs, size: int) -> Iterator[list[tuple]]:
    """The scope's records in primary key order, `size` at a time, as row tuples (ID, …).

    PostgreSQL reads the first chunk by a plain query, the rest through one
    server-side cursor: two queries per step, whatever else the table holds, and
    no per-row work in the ORM. Django
    declares it WITH HOLD (the connection is in autocommit), so the server
    materializes the result before the first fetch; the worker still holds
    only `size` rows at a time. (A cursor inside a transaction on a connection
    of its own would stream, but measured no faster.) SQLite
    pages by key, one short query per chunk, so no read stays open while the
    same connection writes the Error Log and the progress.
    """
    rows = (
        qs.annotate(
            parent_ids_text=Cast("parent_ids", TextField()), payload_text=Cast("payload", TextField())
        )
        .order_by("id")
        .values_list("id", "record_id", "parent_ids_text", "payload_text", "state_excluded", "school_year")
    )
    loads = json.loads
    connection = connections[rows.db]
    if connection.vendor == "postgresql":
        # The first chunk is one plain query: most steps of a small district fit in it,
        # and a cursor costs three more round trips (DECLARE, FETCH, CLOSE).
        first = list(rows[:size])
        if first:
            yield [(i, rid, loads(p), pl, ex, y, p) for i, rid, p, pl, ex, y in first]
        if len(first) < size:
            return
        rest = rows.filter(id__gt=first[-1][0])
        sql, params = rest.query.get_compiler(using=rows.db).as_sql()
        with connection.chunked_cursor() as cursor:
            cursor.execute(sql, params)
            while batch := cursor.fetchmany(size):
                yield [(i, rid, loads(p), pl, ex, y, p) for i, rid, p, pl, ex, y in batch]
        return
    last = 0
    while batch := list(rows.filter(id__gt=last)[:size]):
        yield [(i, rid, loads(p), pl, bool(ex), y, p) for i, rid, p, pl, ex, y in batch]
        last = batch[-1][0]


class JSONText(Mapping):
    """A payload as the database gave it (JSON text), decoded only if a rule reads it."""

    __slots__ = ("text", "_data")

    def __init__(self, text: str):
        self.text, self._data = text, None

    def _decoded(self) -> dict:
        if self._data is None:
            self._data = json.loads(self.text)
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._decoded()[key]

    def __iter__(self):
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())


def blocked_tests(step: DISBatchHistory) -> set[int]:
    """Tests with no end year that have a score without a date: their sync is blocked."""
    district_side, _ = scope(step)
    undated = district_side.filter(Q(payload__date=None) | Q(payload__date__isnull=True))
    test_ids = set()
    # A malformed score (its parent ids or payload not an object, its test id not a
    # whole number, no "date" key because it is no object) is its own error:
    # it blocks no test. Undated scores are few; reading their payloads is cheap.
    for parent_ids, payload in undated.values_list("parent_ids", "payload"):
        if isinstance(parent_ids, dict) and isinstance(payload, dict) and payload.get("date") in (None, ""):
            if (test_id := rules.whole_number(parent_ids.get("Test"))) is not None:
                test_ids.add(test_id)
    if not test_ids:
        return set()
    tests = DistrictRecord.objects.filter(
        district_id=step.district_id, sync_object__name="Test", record_id__in=test_ids
    ).values_list("record_id", "payload")
    return {rid for rid, payload in tests if not (isinstance(payload, dict) and payload.get("end_year"))}


def at_state(
    district_code: str, wanted: Mapping[str, set[int]], other_year: Mapping[str, int] | None = None
) -> dict[str, set[int]]:
    """Which of the ids wanted of each object the state holds for this district: one
    indexed query for all of a chunk's parents (a small step's parents are a statement
    each otherwise). `other_year`: for these objects, only rows of another school year
    than the one given (runner.batch: this year's are being written in the same batch)."""
    other_year = other_year or {}
    present: dict[str, set[int]] = {name: set() for name in wanted}
    asked = {name: ids for name, ids in wanted.items() if ids}
    if not asked:
        return present
    connection = connections[StateRecord.objects.db]
    postgres = connection.vendor == "postgresql"
    table = connection.ops.quote_name(StateRecord._meta.db_table)
    # One SELECT per object, joined by UNION ALL: each planned as its own query would be
    # (an index-only scan of the unique index), where one WHERE of ORed conditions made
    # PostgreSQL read the heap through a bitmap (1.4 ms against 0.5 ms for 2,000 ids).
    selects, params = [], []
    for name, ids in asked.items():
        low, high = min(ids), max(ids)
        select = f"SELECT %s, record_id FROM {table} WHERE district_code = %s AND sync_object = %s AND "
        params += [name, district_code, name]
        if name in other_year:  # a null year is another year too
            select += f"school_year {'IS DISTINCT FROM' if postgres else 'IS NOT'} %s AND "
            params.append(other_year[name])
        if high - low < 4 * len(ids):
            # Children stream in their parents' order, so a chunk's parent ids are
            # mostly close together: one index range scan beats a lookup per id.
            selects.append(select + "record_id BETWEEN %s AND %s")
            params += [low, high]
        elif postgres:  # one array parameter rather than thousands
            selects.append(select + "record_id = ANY(%s)")
            params.append(list(ids))
        else:
            selects.append(select + f"record_id IN ({', '.join(['%s'] * len(ids))})")
            params += ids
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(selects), params)
        for name, record_id in cursor.fetchall():
            if record_id in asked[name]:
                present[name].add(record_id)
    return present


def context(
    step: DISBatchHistory, parents: tuple[str, ...], rows: list[tuple], blocked: set[int], enrolled: set[int]
):
    code, name = step.district.code, step.sync_object.name
    # Only well-formed ids are looked up; the rules error the others (Reason.MALFORMED).
    objects = [r[PARENT_IDS] for r in rows if isinstance(r[PARENT_IDS], dict)]
    wanted = {
        parent: {n for p in objects if (n := rules.whole_number(p.get(parent))) is not None}
        for parent in parents
    }
    present = at_state(code, wanted)
    tests = scored_tests(step, rows) if name == "TestScore" else {}
    return rules.Context(name, parents, step.school_year, present, tests, blocked, enrolled)


def scored_tests(step: DISBatchHistory, rows: list[tuple]) -> dict[int, Any]:
    """The payloads of the district's Tests the scores among `rows` name, by id."""
    objects = [r[PARENT_IDS] for r in rows if isinstance(r[PARENT_IDS], dict)]
    test_ids = {n for p in objects if (n := rules.whole_number(p.get("Test"))) is not None}
    return dict(
        DistrictRecord.objects.filter(
            district_id=step.district_id, sync_object__name="Test", record_id__in=test_ids
        ).values_list("record_id", "payload")
    )


def enrolled_students(step: DISBatchHistory) -> set[int]:
    """The district's students actively enrolled in the step's year, read once per step.

    No index serves a lookup by a JSON key, so asking per chunk which of its
    students are enrolled read every enrollment once a chunk; one read per step
    costs a set of ids (a few MB for 50,000 students) instead.
    """
    # An open enrollment's end_date is JSON null (the demo) or absent (a loaded CSV's
    # empty cell): `payload__end_date=None` alone matches only the null.
    active = (
        DistrictRecord.objects.filter(
            district_id=step.district_id,
            sync_object__name="Enrollment",
            school_year=step.school_year,
            state_excluded=False,
        )
        .filter(Q(payload__end_date=None) | Q(payload__end_date__isnull=True))
        .values_list("parent_ids__PersonIdentity", flat=True)
    )
    # A student id is a whole number as the rules read one (rules.whole_number:
    # an integer, or digits as text; SQLite hands "12" over as 12 anyway).
    # Anything else there (null, a boolean, a fraction) enrolls nobody: its own
    # step errors it (Reason.MALFORMED), and it must not fail the scores.
    whole = rules.whole_number
    return {n for p in active.iterator(chunk_size=10_000) if (n := whole(p)) is not None}


def copy_text(value: str) -> str:
    """JSON text made safe for COPY's text format."""
    # COPY's text format gives backslash a meaning. Tabs and newlines cannot
    # occur: JSON text escapes them inside strings, and jsonb prints none between.
    return value.replace("\\", "\\\\")


class OrmWriter:
    """The upsert through the ORM: model instances, bulk_create(update_conflicts).

    Like SqlWriter: encode() runs on the step's thread, open() and write() on
    the state side's thread, inside its transaction.
    """

    def __init__(self, step: DISBatchHistory):
        self.step = step

    def encode(self, rows: list[tuple]) -> list[tuple]:
        return rows

    def open(self) -> None:
        pass

    def write(self, pieces: list[list[tuple]], now) -> None:
        step, loads = self.step, json.loads
        StateRecord.objects.bulk_create(
            [
                StateRecord(
                    district_code=step.district.code,
                    sync_object=step.sync_object.name,
                    school_year=year,
                    record_id=record_id,
                    parent_ids=parent_ids,
                    payload=loads(payload),
                    step=step.pk,
                    synced_at=now,
                )
                for rows in pieces
                for _id, record_id, parent_ids, payload, _excluded, year, _text in rows
            ],
            update_conflicts=True,
            unique_fields=["district_code", "sync_object", "record_id"],
            update_fields=["school_year", "parent_ids", "payload", "step", "synced_at"],
        )


def upsert_sql(select: str) -> str:
    """INSERT into the state store of the rows `select` gives (district_code, sync_object,
    school_year, record_id, parent_ids, payload, step, synced_at), each replacing the
    record it names (ON CONFLICT DO UPDATE): every path's upsert."""
    table = connections[StateRecord.objects.db].ops.quote_name(StateRecord._meta.db_table)
    # "WHERE" in `select` keeps SQLite from reading ON CONFLICT as a join's condition.
    return (
        f"INSERT INTO {table} (district_code, sync_object, school_year, record_id, parent_ids, payload, "
        f"step, synced_at) {select} ON CONFLICT (district_code, sync_object, record_id) DO UPDATE "
        "SET school_year = excluded.school_year, parent_ids = excluded.parent_ids, "
        "payload = excluded.payload, step = excluded.step, synced_at = excluded.synced_at"
    )


class SqlWriter:
    """The upsert in set-based SQL: valid records go into a temporary staging
    table (COPY on PostgreSQL, one executemany elsewhere), then one
    INSERT … SELECT … ON CONFLICT DO UPDATE moves them into the state store.

    encode() does the Python work on the step's thread; open() and write()
    only talk to the database, on the state side's thread and inside its
    transaction (on PostgreSQL the staging table is emptied with it: ON COMMIT DELETE ROWS).
    """

    STAGE = "resync_stage"

    def __init__(self, step: DISBatchHistory):
        self.step = step
        self.staged = False  # rows of an earlier write in the staging table
        self.alias = StateRecord.objects.db
        self.postgres = connections[self.alias].vendor == "postgresql"
        self.upsert = upsert_sql(
            f"SELECT %s, %s, school_year, record_id, parent_ids, payload, %s, %s FROM {self.STAGE} WHERE true"
        )

    def encode(self, rows: list[tuple]) -> str | list[tuple]:
        """The rows as COPY text (PostgreSQL) or as parameter tuples."""
        if not self.postgres:
            return [
                (year, record_id, parents, payload) for _i, record_id, _p, payload, _e, year, parents in rows
            ]
        text, null = copy_text, "\\N"
        return "".join(
            f"{null if year is None else year}\t{record_id}\t{text(parents)}\t{text(payload)}\n"
            for _id, record_id, _parents, payload, _excluded, year, parents in rows
        )

    def open(self) -> None:
        open_stage(
            self.alias,
            self.STAGE,
            postgres="school_year smallint, record_id bigint, parent_ids jsonb, payload jsonb",
            sqlite="school_year integer, record_id integer, parent_ids text, payload text",
        )

    def write(self, pieces: list, now) -> None:
        step, connection = self.step, connections[self.alias]
        with connection.cursor() as cursor:
            if self.staged:  # the last write's rows (the last ones go with the commit, or at open)
                cursor.execute(f"TRUNCATE {self.STAGE}" if self.postgres else f"DELETE FROM {self.STAGE}")
            if self.postgres:
                # COPY goes through the driver's own cursor, which raises the driver's
                # errors: wrapped as Django wraps every other call, a connection cut
                # mid-COPY is Django's OperationalError, which the job queues again,
                # and not an unknown error that fails the step.
                with connection.wrap_database_errors:
                    cursor.cursor.copy_expert(
                        f"COPY {self.STAGE} FROM STDIN", io.StringIO("".join(pieces)), size=1 << 18
                    )
            else:
                cursor.executemany(
                    f"INSERT INTO {self.STAGE} VALUES (%s, %s, %s, %s)",
                    [row for rows in pieces for row in rows],
                )
            cursor.execute(
                self.upsert,
                [
                    step.district.code,
                    step.sync_object.name,
                    step.pk,
                    connection.ops.adapt_datetimefield_value(now),
                ],
            )
            self.staged = True


# The PostgreSQL connections (the driver's own, which a reconnect replaces), each with
# the staging tables it holds.
_staged: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def open_stage(alias: str, name: str, postgres: str, sqlite: str) -> None:
    """The temporary staging table `name` (columns as each database declares them), empty,
    on `alias`'s connection, inside its transaction. On PostgreSQL it is made once per
    connection and emptied by every commit: a worker's state connection serves step
    after step, and a table made and dropped per step cost each step catalog writes
    (pg_class, pg_attribute, pg_type), and asking whether it exists, a statement."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({sqlite})")
            cursor.execute(f"DELETE FROM {name}")
            return
        raw = connection.connection
        if name in _staged.get(raw, ()):
            return
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({postgres}) ON COMMIT DELETE ROWS")
        # Known once its transaction commits: rolled back, the table is gone too.
        transaction.on_commit(lambda: _staged.setdefault(raw, set()).add(name), using=alias)


def writer(step: DISBatchHistory) -> OrmWriter | SqlWriter:
    """The state upsert RESYNC_WRITE asks for."""
    return SqlWriter(step) if settings.RESYNC_WRITE == "sql" else OrmWriter(step)


def split_chunk(
    step: DISBatchHistory, rows: list[tuple], ctx: rules.Context
) -> tuple[list[tuple], list[ErrorLog]]:
    """Split a chunk into the rows that may reach the state and the Error Log of the others."""
    good, bad = [], []
    check, record = rules.check, rules.Record
    for row in rows:
        # Unpacked by name (the fields at ID, RECORD_ID, …): no lookup per field.
        _id, record_id, parent_ids, text, excluded, _year, _parent_ids_text = row
        # Decoded lazily when it is an object (the rules read few payloads); a payload
        # that is not one is decoded here, for the rules to error it.
        payload = JSONText(text) if text.lstrip()[:1] == "{" else json.loads(text)
        failure = check(record(record_id, parent_ids, payload, excluded), ctx)
        if failure is None:
            good.append(row)
            continue
        reason, message = failure
        bad.append(
            ErrorLog(
                step=step,
                district_id=step.district_id,
                sync_object_id=step.sync_object_id,
                record_id=record_id,
                reason=reason,
                message=message[:300],
            )
        )
    return good, bad


class StateSide:
    """The step's state-side transaction, run on a thread of its own.

    The database upserts one batch while the step's thread reads and judges
    the next, so a worker keeps both sides busy instead of waiting on each in
    turn. Everything the step writes at the state, down to removing what the
    district no longer has, is one transaction on this thread's connection: if
    the step fails (here or there) it rolls back whole, as before. A write is
    at most WRITE_ROWS records and at most two writes' worth wait in between
    (the next one ready when the database is), so memory stays flat.
    """

    _DONE, _ABORT = object(), object()

    def __init__(self, step: DISBatchHistory, state_side, looked_up: bool):
        self.step, self.state_side = step, state_side
        # Only a parent's records are looked up later (by its children's steps).
        self.looked_up = looked_up
        self.upsert = writer(step)
        self.chunks: queue.Queue = queue.Queue(maxsize=max(2, 2 * WRITE_ROWS // settings.RESYNC_CHUNK))
        self.failure: BaseException | None = None
        # Instrumentation on the step's connection (execute_wrapper) sees these statements too.
        self.wrappers = list(connections[StateRecord.objects.db].execute_wrappers)
        self.future: Future | None = None

    def __enter__(self) -> StateSide:
        self.future = _state_thread().submit(self._run)
        return self

    def write(self, rows: list[tuple]) -> None:
        if rows:
            self._hand_over((len(rows), self.upsert.encode(rows)))

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._hand_over(self._ABORT if exc_type else self._DONE)
        finally:
            wait([self.future])
        self.future.result()  # what _run could not hand over (it hands over everything else)
        if exc_type is None and self.failure is not None:
            raise self.failure

    def _hand_over(self, item) -> None:
        while True:
            if self.failure is not None and item is not self._ABORT:
                raise self.failure
            if self.future.done():
                return
            try:
                self.chunks.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _batch(self) -> tuple[list, int, bool]:
        """What is waiting, up to WRITE_ROWS records: (pieces, records, done).

        While the database keeps up, each chunk is written as soon as it comes;
        when it falls behind, the chunks that piled up go in one write.
        """
        pieces, count = [], 0
        item = self.chunks.get()
        while True:
            if item is self._ABORT:
                raise _Aborted
            if item is self._DONE:
                return pieces, count, True
            pieces.append(item[1])
            count += item[0]
            if count >= WRITE_ROWS:
                return pieces, count, False
            try:
                item = self.chunks.get_nowait()
            except queue.Empty:
                return pieces, count, False

    def _run(self) -> None:
        alias = StateRecord.objects.db
        try:
            jobs.reset_connections()  # a connection a previous step's failure left broken
            connections[alias].execute_wrappers[:] = self.wrappers
            with transaction.atomic(using=alias):
                # Nothing at the state before (a first load): nothing to remove after.
                had_rows = self.state_side.exists()
                self.upsert.open()
                written, done = 0, False
                while not done:
                    pieces, count, done = self._batch()
                    if pieces:
                        self.upsert.write(pieces, timezone.now())
                        written += count
                # What the district no longer has, and what errored, leaves the state.
                if had_rows:
                    self.state_side.exclude(step=self.step.pk).delete()
                if self.looked_up and written >= ANALYZE_ROWS:
                    refresh_statistics(alias, written, first_load=not had_rows)
        except _Aborted:
            pass
        except BaseException as e:  # handed to the step's thread, which raises it
            self.failure = e
        finally:
            connections[alias].execute_wrappers.clear()
            if not jobs.keep_connections:
                connections.close_all()  # this thread's own connections


_local = threading.local()


def _state_thread() -> ThreadPoolExecutor:
    """The thread that runs the state side of the calling thread's steps, one after
    another. It lives as long as its caller: in a worker its database connection
    serves every step (jobs.keep_connections), rather than a thread and a new
    connection per step."""
    executor = getattr(_local, "state", None)
    if executor is None:
        executor = _local.state = ThreadPoolExecutor(max_workers=1, thread_name_prefix="resync-state")
    return executor


def close_state_connections() -> None:
    """Close the connections of the calling thread's state-side thread (a worker that
    stops: they would outlive it, holding the server's backends)."""
    executor = getattr(_local, "state", None)
    if executor is not None:
        executor.submit(connections.close_all).result()


def refresh_statistics(alias: str, written: int, first_load: bool) -> None:
    """ANALYZE the state store's lookup columns when a parent's step wrote its object's
    first records for the district, or a good share of the store (PostgreSQL).

    Children look their parents up by (district, object, record id). With
    statistics taken before the parent's records arrived, PostgreSQL picks the
    scope index instead and reads every record of the parent object for each
    chunk: quadratic. Autovacuum catches up a minute or so later; a first load
    of a large district cannot wait for it. A state's store holds every district:
    one district's first load is a small share of it, and yet its statistics know
    none of the district's rows (a million-record district's first load next to a
    million of other districts' took 41 s; with this refresh, 16 s; issue 16).
    """
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return
    table = StateRecord._meta.db_table
    with connection.cursor() as cursor:
        if not first_load:
            cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
            (known,) = cursor.fetchone()
            if written <= 0.2 * max(known, 0):
                return
        # The columns the lookups filter on: a fraction of a whole ANALYZE's time.
        cursor.execute(f"ANALYZE {connection.ops.quote_name(table)} (district_code, sync_object, record_id)")


class _Aborted(Exception):
    """The step's thread failed: roll the state side back."""


class RunningCounts:
    """A running step's counts (processed, errors), written to its history row with a
    heartbeat and pushed live.

    The step's thread writes them after a full chunk, at most once a chunk and
    once every PROGRESS_SECONDS; a heartbeat thread writes them whenever the
    step has been silent that long, waiting on the database (a large read
    starting, the state side's last batches, statistics), so the websocket
    hears of every running step at least about twice a second.
    """

    def __init__(self, step: DISBatchHistory, on_progress: Callable[[DISBatchHistory], None] | None):
        self.step, self.on_progress = step, on_progress
        self.processed = self.errors = 0
        self.written_at = time.monotonic() - PROGRESS_SECONDS  # the first full chunk reports
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"resync-step-{step.pk}-beat", daemon=True)

    def __enter__(self) -> RunningCounts:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        # Joined before the step ends: no progress lands after its result.
        self.stop.set()
        self.thread.join()

    def count(self, rows: int, errors: int, full_chunk: bool) -> None:
        self.processed += rows
        self.errors += errors
        if full_chunk:
            self.write()

    def write(self) -> None:
        with self.lock:
            if time.monotonic() - self.written_at < PROGRESS_SECONDS:
                return
            self.written_at = time.monotonic()
            step = self.step
            DISBatchHistory.objects.filter(pk=step.pk).update(
                processed=self.processed, errors=self.errors, heartbeat_at=timezone.now()
            )
            if self.on_progress:
                step.processed, step.errors = self.processed, self.errors
                self.on_progress(step)

    def _beat(self) -> None:
        try:
            while not self.stop.wait(PROGRESS_SECONDS / 2):
                try:
                    self.write()
                except Exception:  # a missed beat must not end the step; the step's own writes will tell
                    log.exception("step %s: could not write its progress", self.step.pk)
                    # A cut connection stays unusable: the next beat opens a fresh one.
                    connections.close_all()
        finally:
            connections.close_all()  # this thread's own connections


@dataclass(frozen=True)
class Catalog:
    """What a step reads of the catalog: each enabled object's enabled parents (by name,
    the order the rules name them in) and which objects have an enabled child (their
    records are looked up later). Read once per layer by a one-job request."""

    parents: dict[str, tuple[str, ...]]
    looked_up: frozenset[str]


def read_catalog() -> Catalog:
    """The catalog as it is now, in three queries."""
    enabled = set(SyncObject.objects.enabled().values_list("name", flat=True))
    parents = {
        name: tuple(sorted(p for p in of if p in enabled))
        for name, of in SyncObject.objects.parents_map().items()
    }
    looked_up = frozenset(p for name, of in parents.items() if name in enabled for p in of)
    return Catalog(parents, looked_up)


def move_records(
    step: DISBatchHistory,
    on_progress: Callable[[DISBatchHistory], None] | None = None,
    catalog: Catalog | None = None,
) -> DISBatchHistory:
    """Move the step's records to the state and count them, judged here in Python (on
    PostgreSQL, runner.bulk judges them at the state: runner.lifecycle.move_records
    chooses). The step must be claimed (runner.lifecycle.claim), its Error Log empty;
    its end is the caller's to record. `catalog`: as read for its layer (read_catalog),
    or read now."""
    catalog = catalog or read_catalog()
    parents = catalog.parents[step.sync_object.name]
    scores = step.sync_object.name == "TestScore"
    blocked = blocked_tests(step) if scores else set()
    enrolled = enrolled_students(step) if scores else set()
    district_side, state_side = scope(step)
    size = settings.RESYNC_CHUNK
    looked_up = step.sync_object.name in catalog.looked_up
    with RunningCounts(step, on_progress) as progress, StateSide(step, state_side, looked_up) as state:
        for rows in chunks(district_side, size):
            ctx = context(step, parents, rows, blocked, enrolled)
            good, bad = split_chunk(step, rows, ctx)
            state.write(good)
            ErrorLog.objects.bulk_create(bad)
            progress.count(len(rows), len(bad), full_chunk=len(rows) == size)
    step.processed, step.errors = progress.processed, progress.errors
    return step
