"""Many small steps moved together: one read, one judgement pass, one state transaction.

A state request is mostly small objects: a district of 4,000 records has some
thirty objects with records, each a few dozen to a few hundred. Run one by one
(runner.engine.move_records), each pays about 7 statements and 2 commits, and the
ORM building them, whatever its size (issue 16: 2,800 such steps cost a
100-district state 70 CPU seconds against the floor's 11 s for every record).
Here a layer's small steps are read in one query, judged object by object by the
same rules (resync.rules) against parents looked up in one query, and written in
one staging COPY, one upsert and one deletion, in one state transaction.

What each step keeps: its own counts, colour, history row and Error Log rows, and
its crash safety. The batch's state transaction is all or nothing, so a batch
killed or cut half-way leaves the state as it was, and its steps run again
(runner.lifecycle.run_batch queues them again, as it does a single step).
While it runs, a batch's steps beat and are pushed as a running step is (Beat).
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from history.models import DISBatchHistory, ErrorLog
from resync import rules
from resync.models import DistrictRecord, StateRecord
from runner import bulk, engine
from runner.engine import PARENT_IDS, RECORD_ID, copy_text

log = logging.getLogger(__name__)

Key = tuple[int, int]  # (district id, sync object id): one step of a batch


def small(step: DISBatchHistory) -> bool:
    """May the step run in a batch? Not a Selective Sync's: its records are named, its
    deletions narrowed to them."""
    return step.request.records is None


def sizes(steps: list[DISBatchHistory], cap: int) -> dict[int, int]:
    """Each step's district records, counted up to `cap` (a step at `cap` is not small):
    one statement for them all, each count reading at most `cap` index entries."""
    if not steps:
        return {}
    connection = connections[DistrictRecord.objects.db]
    table = connection.ops.quote_name(DistrictRecord._meta.db_table)
    selects, params = [], []
    for step in steps:
        year = " AND school_year = %s" if step.sync_object.year_scoped else ""
        selects.append(
            f"SELECT %s, COUNT(*) FROM (SELECT 1 FROM {table} WHERE district_id = %s "
            f"AND sync_object_id = %s{year} LIMIT %s) AS s{step.pk}"
        )
        params += [step.pk, step.district_id, step.sync_object_id]
        params += [step.school_year] if year else []
        params.append(cap)
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(selects), params)
        return dict(cursor.fetchall())


def pack(steps: list[DISBatchHistory], counted: Mapping[int, int], limit: int) -> list[list[DISBatchHistory]]:
    """The steps as units to run: each step that is not small (or holds RESYNC_CHUNK
    records or more) alone, the most records first; then the others in batches of up
    to `limit` records, in their order. `limit` 0: every step alone."""
    alone, batches, batch, records = [], [], [], 0
    for step in steps:
        n = counted.get(step.pk, 0)
        if not small(step) or n >= settings.RESYNC_CHUNK or not limit:
            alone.append([step])
            continue
        if batch and records + n > limit:
            batches.append(batch)
            batch, records = [], 0
        batch.append(step)
        records += n
    if batch:
        batches.append(batch)
    alone.sort(key=lambda unit: -counted.get(unit[0].pk, 0))  # stable: ties keep their order
    return alone + batches


def read(steps: list[DISBatchHistory]) -> dict[Key, list[tuple]]:
    """The steps' district records, as engine.chunks gives them (row tuples), by step."""
    where = Q()
    for step in steps:
        scope = Q(district_id=step.district_id, sync_object_id=step.sync_object_id)
        if step.sync_object.year_scoped:
            scope &= Q(school_year=step.school_year)
        where |= scope
    rows = (
        DistrictRecord.objects.filter(where)
        .annotate(parent_ids_text=Cast("parent_ids", TextField()), payload_text=Cast("payload", TextField()))
        .order_by("id")
        .values_list(
            "district_id",
            "sync_object_id",
            "id",
            "record_id",
            "parent_ids_text",
            "payload_text",
            "state_excluded",
            "school_year",
        )
    )
    by_step: dict[Key, list[tuple]] = defaultdict(list)
    loads = json.loads
    for d, o, i, rid, p, pl, ex, y in rows:
        by_step[d, o].append((i, rid, loads(p), pl, bool(ex), y, p))
    return by_step


def judge(
    steps: list[DISBatchHistory], rows: Mapping[Key, list[tuple]], catalog: engine.Catalog
) -> tuple[dict[int, list[tuple]], list[ErrorLog]]:
    """Each step's records split by the rules: (the good rows by step id, the Error Log).

    `steps` in layer order. A parent whose own step is in the batch (several layers at
    once, runner.lifecycle.span) is not looked up at the state but judged first: once
    the batch commits, the state holds exactly its good rows of its scope, plus, for a
    year-scoped parent, its rows of other years (looked up). Other parents are looked
    up at the state, all in one query per district."""
    here = {(s.district_id, s.sync_object.name): s for s in steps}
    wanted: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    other_year: dict[str, dict[str, int]] = defaultdict(dict)
    for step in steps:
        code = step.district.code
        for row in rows.get((step.district_id, step.sync_object_id), ()):
            ids = row[PARENT_IDS]
            if not isinstance(ids, dict):
                continue  # the rules error it (Reason.MALFORMED)
            for parent in catalog.parents[step.sync_object.name]:
                if (n := rules.whole_number(ids.get(parent))) is not None:
                    wanted[code][parent].add(n)
        for parent in catalog.parents[step.sync_object.name]:
            own = here.get((step.district_id, parent))
            if own is not None and own.layer < step.layer:  # judged before it, in this batch
                if own.sync_object.year_scoped:
                    other_year[code][parent] = own.school_year
                else:
                    wanted[code].pop(parent, None)  # all of it is this batch's
    held = {code: engine.at_state(code, asked, other_year[code]) for code, asked in wanted.items()}
    good: dict[int, list[tuple]] = {}
    judged: dict[tuple[int, str], set[int]] = {}
    bad: list[ErrorLog] = []
    for step in steps:
        code, parents = step.district.code, catalog.parents[step.sync_object.name]
        found = {}
        for p in parents:
            found[p] = held.get(code, {}).get(p, set())
            own = here.get((step.district_id, p))
            if own is not None and own.layer < step.layer:
                found[p] = found[p] | judged[step.district_id, p]
        mine = rows.get((step.district_id, step.sync_object_id), [])
        reads = {}
        if step.sync_object.name == "TestScore":  # what engine.move_records reads for scores
            reads = {
                "tests": engine.scored_tests(step, mine),
                "blocked_tests": engine.blocked_tests(step),
                "enrolled": engine.enrolled_students(step),
            }
        ctx = rules.Context(step.sync_object.name, parents, step.school_year, found, **reads)
        good[step.pk], errors = engine.split_chunk(step, mine, ctx)
        judged[step.district_id, step.sync_object.name] = {r[RECORD_ID] for r in good[step.pk]}
        bad += errors
        step.processed, step.errors = len(mine), len(errors)
    return good, bad


STAGE = "resync_stage_batch"


def write(
    steps: list[DISBatchHistory], good: Mapping[int, list[tuple]], looked_up: frozenset[str] = frozenset()
) -> None:
    """The steps' good rows into the state store and what each no longer has out of it,
    in one transaction: a staging COPY (executemany on SQLite), one upsert, one DELETE;
    then the statistics, as a step of a parent object in `looked_up` refreshes them
    (engine.refresh_statistics)."""
    alias = StateRecord.objects.db
    connection = connections[alias]
    postgres = connection.vendor == "postgresql"
    table = connection.ops.quote_name(StateRecord._meta.db_table)
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        had = bulk.holding(cursor, steps, table)
        if any(good.values()):
            _stage(cursor, connection, steps, good, postgres)
            cursor.execute(
                engine.upsert_sql(
                    "SELECT district_code, sync_object, school_year, record_id, parent_ids, payload, step, %s "
                    f"FROM {STAGE} WHERE true"
                ),
                [connection.ops.adapt_datetimefield_value(timezone.now())],
            )
        bulk.remove_stale(cursor, [s for s in steps if s.pk in had], table)
        parents = [
            s for s in steps if s.sync_object.name in looked_up and len(good[s.pk]) >= engine.ANALYZE_ROWS
        ]
        if parents:
            biggest = max(parents, key=lambda s: len(good[s.pk]))
            engine.refresh_statistics(alias, len(good[biggest.pk]), first_load=biggest.pk not in had)


def _stage(cursor, connection, steps, good, postgres: bool) -> None:
    engine.open_stage(
        StateRecord.objects.db,
        STAGE,
        postgres="district_code varchar(16), sync_object varchar(64), step integer, school_year smallint, "
        "record_id bigint, parent_ids jsonb, payload jsonb",
        sqlite="district_code text, sync_object text, step integer, school_year integer, record_id integer, "
        "parent_ids text, payload text",
    )
    if postgres:
        text, null = copy_text, "\\N"
        pieces = []
        for step in steps:
            lead = f"{step.district.code}\t{step.sync_object.name}\t{step.pk}\t"  # once a step, not a record
            pieces += [
                f"{lead}{null if year is None else year}\t{record_id}\t{text(parents)}\t{text(payload)}\n"
                for _id, record_id, _p, payload, _e, year, parents in good[step.pk]
            ]
        copy = "".join(pieces)
        with connection.wrap_database_errors:  # a cut mid-COPY is Django's OperationalError
            cursor.cursor.copy_expert(f"COPY {STAGE} FROM STDIN", io.StringIO(copy), size=1 << 18)
        return
    cursor.executemany(
        f"INSERT INTO {STAGE} VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [
            (step.district.code, step.sync_object.name, step.pk, year, record_id, parents, payload)
            for step in steps
            for _id, record_id, _p, payload, _e, year, parents in good[step.pk]
        ],
    )


class Beat:
    """While a batch runs, every PROGRESS_SECONDS: its steps' heartbeat written (one
    UPDATE) and their running state pushed (`push`, one push), as a running step's
    RunningCounts does. The pages hear of every running step at least twice a second,
    and recovery on another host knows the worker is alive. A batch over sooner (most
    are) never touches the database from here."""

    def __init__(self, steps: list[DISBatchHistory], push: Callable[[list[DISBatchHistory]], None]):
        self.steps, self.push = steps, push
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="resync-batch-beat", daemon=True)

    def __enter__(self) -> Beat:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        # Joined before the batch's end is written: no beat lands after the result.
        self.stop.set()
        self.thread.join()

    def _beat(self) -> None:
        try:
            while not self.stop.wait(engine.PROGRESS_SECONDS):
                try:
                    ids = [s.pk for s in self.steps]
                    DISBatchHistory.objects.filter(pk__in=ids).update(heartbeat_at=timezone.now())
                    self.push(self.steps)
                except Exception:  # a missed beat must not end the batch
                    log.exception("steps %s: could not write their heartbeat", [s.pk for s in self.steps])
                    connections.close_all()
        finally:
            connections.close_all()  # this thread's own connections


def move(steps: list[DISBatchHistory], catalog: engine.Catalog) -> None:
    """Move the claimed `steps` (all small) together and count each; their ends are the
    caller's to record. A retried step starts its Error Log afresh."""
    retried = [s.pk for s in steps if s.attempts > 1]
    if retried:
        ErrorLog.objects.filter(step_id__in=retried).delete()
    if bulk.usable():
        bulk.move_steps(steps, catalog)
        return
    good, bad = judge(steps, read(steps), catalog)
    write(steps, good, catalog.looked_up)
    ErrorLog.objects.bulk_create(bad)
