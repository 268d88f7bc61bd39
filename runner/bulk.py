"""Steps moved inside PostgreSQL: their records are judged where they land.

The chunk path (runner.engine) and a batch of the SQLite path (runner.batch)
decode every record in the worker, apply resync.rules to it and encode it
again for the state: about 15 µs of worker CPU a record, more than PostgreSQL
takes to store it (issue 16). Here the district's rows stream untouched into a
staging table at the state (COPY out of one database into the other through a
pipe, as the benchmark's floor moves them), and one INSERT … SELECT a layer
moves from there the records the rules pass beyond doubt: not state-excluded,
parent ids and payload JSON objects, each parent id a JSON integer below 10^18
that the state holds for the district (a hash semi-join against the state's
own table; the district's database works out the first three and the ids as
it hands the rows over). Whatever else the stage holds (a step's errors, a score,
records the rules might still pass, such as a parent id written as digits in
text) is read back in id order and judged in the worker by the same rules as
the chunk path (engine.split_chunk): the rules stay the one statement of what
may reach the state, and the SQL a conservative test of "the rules pass it",
held to them by tests (tests/test_bulk.py).

A batch's layers are judged in turn inside its one state transaction: once a
layer's good rows are upserted and its stale ones deleted, the state holds
exactly what a child of the next layer must find, so it is judged against the
state alone. The transaction is all or nothing, as on the other paths: steps
that fail anywhere leave the state as it was.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections import Counter
from collections.abc import Callable

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from history.models import DISBatchHistory, ErrorLog
from resync.models import DistrictRecord, StateRecord
from runner import engine

STAGE = "resync_stage_bulk"
# A step's district and object are its own (a constant in each statement), not a column.
COLUMNS = "step, id, record_id, parent_ids, payload, state_excluded, school_year, plain, keys"
# A stage this full is ANALYZEd (a small sample) before it is judged: a temporary table
# has no statistics, and a hash join sized for a guess spills to disk.
ANALYZE_STAGE = 10_000


def usable() -> bool:
    """Can steps take the bulk path here? Both sides on PostgreSQL, the SQL upsert."""
    return (
        settings.RESYNC_BULK
        and settings.RESYNC_WRITE == "sql"
        and connections[DistrictRecord.objects.db].vendor == "postgresql"
        and connections[StateRecord.objects.db].vendor == "postgresql"
    )


def fits(step: DISBatchHistory) -> bool:
    """Does a step run alone take the bulk path? Not a score's: its rules read tests and
    enrollments, which only Python judges, so the bulk path would send every score
    through the stage and back for nothing."""
    return step.sync_object.name != "TestScore" and usable()


def plain(step: DISBatchHistory, parents: tuple[str, ...]) -> tuple[str, str, list]:
    """(plain, keys, params): SQL over a district record `r` that the district's database
    computes as it hands the record over. `plain` is true of a record the rules pass
    if its parents are at the state (not state-excluded, parent ids and payload JSON
    objects); `keys` is its parents' ids (in `parents` order) as a bigint array, each
    null unless a JSON integer below 10^18. Never true of a score: only
    Python judges those (its rules read the tests and enrollments)."""
    if step.sync_object.name == "TestScore":
        return "false", "ARRAY[]::bigint[]", []
    keys, params = [], []
    for parent in parents:
        # A JSON number with no fraction (12.0 keeps its scale in jsonb, and Python reads
        # a float) and below 10^18: what json.loads reads as an int that a bigint holds.
        # The CASE casts only what it admits: a cast of anything else would fail the
        # statement, and a condition's order in an AND is the planner's to choose.
        keys.append(
            "CASE WHEN jsonb_typeof(r.parent_ids -> %s) = 'number' AND scale((r.parent_ids -> %s)::numeric) = 0 "
            "AND abs((r.parent_ids -> %s)::numeric) < 1e18 THEN (r.parent_ids -> %s)::bigint END"
        )
        params += [parent] * 4
    return (
        "NOT r.state_excluded AND jsonb_typeof(r.payload) = 'object' AND jsonb_typeof(r.parent_ids) = 'object'",
        f"ARRAY[{', '.join(keys)}]::bigint[]",
        params,
    )


def passing(layer: list[DISBatchHistory], catalog: engine.Catalog) -> tuple[str, list]:
    """(SELECT, params) of the staged rows of the layer's steps that the rules pass beyond
    doubt: plain, and each parent id at the state for the district (a semi-join each).
    One branch per set of parents, joined by UNION ALL: at the top of a WHERE, each
    EXISTS is planned as the join it is (inside an OR, only as a lookup a row)."""
    table = connections[StateRecord.objects.db].ops.quote_name(StateRecord._meta.db_table)
    alike: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for step in layer:
        if step.sync_object.name != "TestScore":
            alike.setdefault((step.district.code, catalog.parents[step.sync_object.name]), []).append(step.pk)
    branches, params = [], []
    for (code, parents), ids in alike.items():
        at = len(params)  # the branch's select list comes before its WHERE
        where = [f"s.step IN ({', '.join(str(int(i)) for i in ids)})", "s.plain"]
        for n, parent in enumerate(parents, start=1):
            where.append(
                f"EXISTS (SELECT 1 FROM {table} t WHERE t.district_code = %s AND t.sync_object = %s "
                f"AND t.record_id = s.keys[{n}])"
            )
            params += [code, parent]
        names = " ".join(f"WHEN {int(step.pk)} THEN %s" for step in layer if step.pk in ids)
        branches.append(
            f"SELECT %s, CASE s.step {names} END, s.school_year, s.record_id, s.parent_ids, s.payload, "
            f"s.step FROM {STAGE} s WHERE {' AND '.join(where)}"
        )
        params[at:at] = [code, *(step.sync_object.name for step in layer if step.pk in ids)]
    return " UNION ALL ".join(branches), params


class Tally:
    """A step's counts as they come: engine.RunningCounts for a step alone (it reports
    them live), this for a batch's (reported at its end)."""

    processed = errors = 0


class CountingReader:
    """The pipe's read end, counting the rows it hands to COPY (a row ends with a
    newline in COPY's text format; one inside a value is escaped): a step alone's
    live progress while its records stream in."""

    def __init__(self, pipe, tally):
        self.pipe, self.tally = pipe, tally

    def read(self, size: int = -1) -> bytes:
        data = self.pipe.read(size)
        self.tally.processed += data.count(b"\n")
        return data


def select(steps: list[DISBatchHistory], catalog: engine.Catalog) -> str:
    """The steps' district records as the stage's columns, in one SELECT, parameters
    inlined. Each step's are its record_scope (scope_sql, held to record_scope by a
    test): the ORM took 0.4 ms to build each."""
    source = connections[DistrictRecord.objects.db]
    table = source.ops.quote_name(DistrictRecord._meta.db_table)
    parts = []
    with source.cursor() as cursor:
        for step in steps:
            is_plain, keys, params = plain(step, catalog.parents[step.sync_object.name])
            where, scoped = scope_sql(step, district_side=True)
            params += scoped
            parts.append(
                cursor.mogrify(
                    f"SELECT {int(step.pk)}, r.id, r.record_id, r.parent_ids, r.payload, r.state_excluded, "
                    f"r.school_year, {is_plain}, {keys} FROM {table} r WHERE {where}",
                    params,
                ).decode()
            )
    return " UNION ALL ".join(parts)


def copy_across(steps: list[DISBatchHistory], catalog: engine.Catalog, tally) -> None:
    """COPY the steps' district records into the state's stage, both at once through a
    pipe: the district's COPY TO on a thread of its own, the state's COPY FROM here,
    inside the state transaction."""
    source, target = connections[DistrictRecord.objects.db], connections[StateRecord.objects.db]
    query = select(steps, catalog)
    raw = source.connection  # used by the copying thread alone until it ends
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def copy_out() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=1 << 20) as pipe, raw.cursor() as cursor:
                # One process reads: COPY writes its rows one at a time whoever reads them,
                # and parallel workers cost a small batch more to start than they save.
                cursor.execute("SET max_parallel_workers_per_gather = 0")
                cursor.copy_expert(f"COPY ({query}) TO STDOUT", pipe)
                cursor.execute("RESET max_parallel_workers_per_gather")
        except BaseException as e:  # raised on the step's thread, after the COPY into the state
            failure.append(e)

    thread = threading.Thread(target=copy_out, name="resync-copy", daemon=True)
    thread.start()
    try:
        with os.fdopen(read_fd, "rb", buffering=1 << 20) as pipe, target.cursor() as cursor:
            # Wrapped as Django wraps its own calls: a cut connection is Django's
            # OperationalError, which queues the steps again (runner.lifecycle).
            with target.wrap_database_errors:
                cursor.cursor.copy_expert(
                    f"COPY {STAGE} ({COLUMNS}) FROM STDIN", CountingReader(pipe, tally), size=1 << 18
                )
    finally:
        thread.join()  # the read end is closed: a writer still writing ends with a broken pipe
        if failure:  # the district connection may be left inside its COPY: the next use reconnects
            source.close()
    if failure:
        with source.wrap_database_errors:
            raise failure[0]


def scope_sql(step: DISBatchHistory, district_side: bool = False) -> tuple[str, list]:
    """(SQL condition, params) of the step's rows, resync.models.record_scope written out:
    its district and object, its year if the object is year-scoped, a Selective Sync's
    records. The district side's table is `r`, keyed by ids; the state's by code and name."""
    if district_side:
        col, sql, params = (
            "r.",
            "r.district_id = %s AND r.sync_object_id = %s",
            [step.district_id, step.sync_object_id],
        )
    else:
        col, sql, params = (
            "",
            "district_code = %s AND sync_object = %s",
            [step.district.code, step.sync_object.name],
        )
    if step.sync_object.year_scoped:
        sql += f" AND {col}school_year = %s"
        params.append(step.school_year)
    if step.request.records is not None:
        sql += f" AND {col}record_id = ANY(%s)"
        params.append(list(step.request.records))
    return sql, params


def holding(cursor, steps: list[DISBatchHistory], table: str) -> set[int]:
    """The ids of the steps whose scope has rows at the state (a first load deletes nothing)."""
    asks, params = [], []
    for step in steps:
        scope, scoped = scope_sql(step)
        asks.append(f"SELECT %s WHERE EXISTS (SELECT 1 FROM {table} WHERE {scope})")
        params += [step.pk, *scoped]
    cursor.execute(" UNION ALL ".join(asks), params)
    return {row[0] for row in cursor.fetchall()}


def remove_stale(cursor, steps: list[DISBatchHistory], table: str) -> None:
    """What the district no longer has, and what errored, leaves the state: the rows of
    each step's scope that its upsert did not write (one DELETE)."""
    gone, params = [], []
    for step in steps:
        scope, scoped = scope_sql(step)
        gone.append(f"({scope} AND step <> %s)")
        params += [*scoped, step.pk]
    if gone:
        cursor.execute(f"DELETE FROM {table} WHERE {' OR '.join(gone)}", params)


def judge_the_rest(
    steps: list[DISBatchHistory], catalog: engine.Catalog, tallies: dict, upsert: engine.SqlWriter
) -> Counter:
    """Judge in Python the staged rows of `steps` their upsert did not write (no state row
    of the step for them), a chunk at a time: upsert the good ones, log the others.
    Returns how many reached the state, by step."""
    state = connections[StateRecord.objects.db]
    table = state.ops.quote_name(StateRecord._meta.db_table)
    by_id = {s.pk: s for s in steps}
    loads, written, reads = json.loads, Counter(), {}
    selects, params = [], []
    for step in steps:
        selects.append(
            "SELECT step, id, record_id, parent_ids::text, payload::text, state_excluded, school_year "
            f"FROM {STAGE} s WHERE s.step = %s AND NOT EXISTS (SELECT 1 FROM {table} t WHERE "
            "t.district_code = %s AND t.sync_object = %s AND t.record_id = s.record_id AND t.step = %s)"
        )
        params += [step.pk, step.district.code, step.sync_object.name, step.pk]
    # A cursor sees the state as it was declared: not the good rows written below.
    with state.chunked_cursor() as cursor:
        cursor.execute(f"SELECT * FROM ({' UNION ALL '.join(selects)}) AS doubt ORDER BY step, id", params)
        while batch := cursor.fetchmany(settings.RESYNC_CHUNK):
            for step_id, group in itertools.groupby(batch, key=lambda row: row[0]):
                step = by_id[step_id]
                parents = catalog.parents[step.sync_object.name]
                rows = [(i, rid, loads(p), pl, ex, y, p) for _s, i, rid, p, pl, ex, y in group]
                if step.sync_object.name == "TestScore" and step.pk not in reads:  # once a step
                    reads[step.pk] = engine.blocked_tests(step), engine.enrolled_students(step)
                ctx = engine.context(step, parents, rows, *reads.get(step.pk, (set(), set())))
                good, bad = engine.split_chunk(step, rows, ctx)
                if good:
                    upsert.step = step  # one writer a transaction: it empties its stage between writes
                    upsert.write([upsert.encode(good)], timezone.now())
                    written[step.pk] += len(good)
                ErrorLog.objects.bulk_create(bad)
                tallies[step.pk].errors += len(bad)
    return written


def move_steps(steps: list[DISBatchHistory], catalog: engine.Catalog, tallies: dict | None = None) -> None:
    """Move the claimed `steps` (in layer order) in one state transaction and count each
    (step.processed, step.errors); their ends are the caller's to record. `tallies`:
    each step's counts as they come, by id (a Tally each if not given)."""
    tallies = tallies or {s.pk: Tally() for s in steps}
    alias = StateRecord.objects.db
    state = connections[alias]
    table = state.ops.quote_name(StateRecord._meta.db_table)
    with transaction.atomic(using=alias), state.cursor() as cursor:
        had = holding(cursor, steps, table)
        engine.open_stage(
            alias,
            STAGE,
            postgres="step integer, id bigint, "
            "record_id bigint, parent_ids jsonb, payload jsonb, state_excluded boolean, school_year smallint, "
            "plain boolean, keys bigint[]",
            sqlite="",  # usable() admits PostgreSQL only
        )
        upsert = engine.SqlWriter(steps[0])
        upsert.open()
        # The statistics of rows written in this transaction (a parent's, a layer ago)
        # say there are none, or what there were before: a plan that believed them
        # scanned every parent for each child (24 s for 5,000 records), or the whole
        # state for one district's parents. So the parents are read by index and hashed
        # once a statement: every statement here reads the state by its indexes (the
        # stage, which has none, is read whole).
        cursor.execute("SET LOCAL enable_nestloop = off; SET LOCAL enable_seqscan = off")
        streamed = tallies[steps[0].pk] if len(steps) == 1 else Tally()
        copy_across(steps, catalog, streamed)
        if len(steps) == 1:
            counted = {steps[0].pk: streamed.processed}
        else:
            cursor.execute(f"SELECT step, COUNT(*) FROM {STAGE} GROUP BY step")
            counted = dict(cursor.fetchall())
        if sum(counted.values()) >= ANALYZE_STAGE:
            # Its size and shares are what the plans need: a small sample tells them.
            cursor.execute(
                f"SET LOCAL default_statistics_target = 10; ANALYZE {STAGE}; "
                "SET LOCAL default_statistics_target = DEFAULT"
            )
        for _layer, group in itertools.groupby(steps, key=lambda s: s.layer):
            layer = list(group)
            written = Counter()
            rows, params = passing(layer, catalog)
            if rows:
                now = state.ops.adapt_datetimefield_value(timezone.now())
                cursor.execute(
                    f"WITH written AS ({engine.upsert_sql(f'SELECT good.*, %s FROM ({rows}) AS good WHERE true')} "
                    "RETURNING step) SELECT step, COUNT(*) FROM written GROUP BY step",
                    [now, *params],
                )
                written.update(dict(cursor.fetchall()))
            short = [s for s in layer if written[s.pk] < counted.get(s.pk, 0)]
            if short:
                written.update(judge_the_rest(short, catalog, tallies, upsert))
            remove_stale(cursor, [s for s in layer if s.pk in had], table)
            parents = [
                s
                for s in layer
                if s.sync_object.name in catalog.looked_up and written[s.pk] >= engine.ANALYZE_ROWS
            ]
            if parents:  # before the next layer's children are judged against them
                biggest = max(parents, key=lambda s: written[s.pk])
                engine.refresh_statistics(alias, written[biggest.pk], first_load=biggest.pk not in had)
    for step in steps:
        step.processed, step.errors = counted.get(step.pk, 0), tallies[step.pk].errors


def move(
    step: DISBatchHistory,
    on_progress: Callable[[DISBatchHistory], None] | None,
    catalog: engine.Catalog,
) -> DISBatchHistory:
    """engine.move_records for a step that fits(): the same state, counts and Error Log,
    its rows counted live as they stream in."""
    with engine.RunningCounts(step, on_progress) as progress:
        move_steps([step], catalog, {step.pk: progress})
    return step
