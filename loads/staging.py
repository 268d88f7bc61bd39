"""A load's valid rows in a temporary table, and the set-based merge into the district's records.

do_load validates the file row by row with no lock held and stages each valid row
here (COPY on PostgreSQL, executemany on SQLite, whose TEMP table lives in the
temp database and takes no write lock on the main one). Only the merge runs in
the load's transaction, under the District row lock: a few statements whatever
the file's size, so a long file no longer holds SQLite's write lock (and every
other writer past its busy timeout) for its whole length.

The merge keeps do_load's rules: a record of another school year is refused and
not moved, a change to a state-locked field is refused (both found by a join, the
messages made in Python by the validator), a record whose content did not change
is not written (it keeps its changed_at), and a snapshot deletes, by an anti-join,
the object's records the file did not hold.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator

import ujson
from django.db import DatabaseError, connections

from resync.models import DistrictRecord
from resync.schemas import Problem, RecordValidator
from runner.engine import copy_text

TABLE = "load_stage"
RECORDS = DistrictRecord._meta.db_table
# Two payloads equal as stored are surely the same record; two that differ may still
# be (a null against an absent key, keys in another order on SQLite), so those few
# are compared in Python as do_load always compared them (actions._same).
FETCH = 5000
NULL = "\\N"  # COPY's text format's null


class Stage:
    """The staged rows of one load on the connection `alias`: add(), then the merge."""

    def __init__(self, alias: str, keep_rows: bool):
        self.alias, self.keep_rows = alias, keep_rows
        self.connection = connections[alias]
        self.postgres = self.connection.vendor == "postgresql"
        # Dropped by its schema's name: never a table of the main database of the same name.
        self.temp = "pg_temp" if self.postgres else "temp"
        self.pending: list[tuple] = []
        self.count = 0

    def __enter__(self) -> Stage:
        json_type = "jsonb" if self.postgres else "text"
        with self.connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.temp}.{TABLE}")
            # SQLite: record_id as the rowid, the join's key for free. PostgreSQL: the
            # index is built once the rows are in (see index()).
            key = "bigint" if self.postgres else "integer PRIMARY KEY"
            cursor.execute(
                f"CREATE TEMPORARY TABLE {TABLE} (line integer, record_id {key}, school_year integer, "
                f"parent_ids {json_type}, payload {json_type}, state_excluded boolean, wire text, "
                "skip smallint NOT NULL DEFAULT 0)"
            )
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.connection.connection is None:
            return  # the connection is gone, and its temporary table with it
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {self.temp}.{TABLE}")
        except DatabaseError:
            # In a transaction the failure broke, the table goes with its rollback (or
            # the next load's DROP): the failure that got here is the one to tell.
            if exc_type is None:
                raise

    def add(self, line: int, parts: tuple, row: dict) -> None:
        rid, year, parents, payload, excluded = parts
        wire = json.dumps(row) if self.keep_rows else None
        self.count += 1
        if not self.postgres:
            # As Django's JSONField writes it, so an unchanged record compares equal as text.
            self.pending.append((line, rid, year, json.dumps(parents), json.dumps(payload), excluded, wire))
            return
        # PostgreSQL parses the text into jsonb: any JSON will do, and ujson writes it
        # faster. The COPY line is made here, once.
        text = copy_text
        self.pending.append(
            f"{line}\t{rid}\t{NULL if year is None else year}\t{text(_dumps(parents))}\t"
            f"{text(_dumps(payload))}\t{'t' if excluded else 'f'}\t{NULL if wire is None else text(wire)}\n"
        )

    def flush(self) -> None:
        if not self.pending:
            return
        with self.connection.cursor() as cursor:
            if self.postgres:
                data = "".join(self.pending)
                with self.connection.wrap_database_errors:
                    cursor.cursor.copy_expert(
                        f"COPY {TABLE} (line, record_id, school_year, parent_ids, payload, state_excluded, "
                        "wire) FROM STDIN",
                        io.StringIO(data),
                        size=1 << 18,
                    )
            else:
                cursor.executemany(
                    f"INSERT INTO {TABLE} (line, record_id, school_year, parent_ids, payload, "
                    "state_excluded, wire) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    self.pending,
                )
        self.pending.clear()

    def index(self) -> None:
        """Ready for the merge: every row in, and (PostgreSQL) indexed and counted for the planner."""
        self.flush()
        if self.postgres:
            with self.connection.cursor() as cursor:
                cursor.execute(f"CREATE UNIQUE INDEX ON {TABLE} (record_id)")
                cursor.execute(f"ANALYZE {TABLE}")


def _join(alias: str = "d") -> str:
    return f"{alias}.district_id = %s AND {alias}.sync_object_id = %s AND {alias}.record_id = s.record_id"


def _loads(value):
    return json.loads(value) if isinstance(value, str) else value


def refusals(
    stage: Stage, district_id: int, obj_id: int, validator: RecordValidator
) -> Iterator[tuple[int, int, list[Problem], dict | None]]:
    """(line, record id, problems, wire row or None) of the staged rows the district's
    records refuse, in file order: a record of another school year, a state-locked
    field changed. The join finds the candidates; the validator words the problems."""
    differ = "IS DISTINCT FROM" if stage.postgres else "IS NOT"
    tests = [f"d.school_year {differ} s.school_year"]
    params: list = []
    for name in validator.locked:
        if stage.postgres:
            tests.append(f"NULLIF(d.payload -> %s, 'null') {differ} NULLIF(s.payload -> %s, 'null')")
            params += [name, name]
        else:
            tests.append(f"json_extract(d.payload, %s) {differ} json_extract(s.payload, %s)")
            params += [_path(name)] * 2
    sql = (
        f"SELECT s.line, s.record_id, d.school_year, s.school_year, d.payload, s.payload, s.wire "
        f"FROM {TABLE} s JOIN {RECORDS} d ON {_join()} WHERE {' OR '.join(tests)} ORDER BY s.line"
    )
    with stage.connection.cursor() as cursor:
        cursor.execute(sql, [district_id, obj_id, *params])
        while batch := cursor.fetchmany(FETCH):
            for line, rid, old_year, year, old, new, wire in batch:
                if old_year != year:
                    # The district's ids are unique across years: the record is another
                    # year's, and rewriting its year would move it out of that year's
                    # state copy without a deletion stamp.
                    problems = [Problem("record_id", f"record {rid} belongs to school year {old_year}")]
                else:
                    problems = validator.locked_changes(_loads(old), _loads(new))
                if problems:
                    yield line, rid, problems, None if wire is None else json.loads(wire)


def skip(stage: Stage, ids: list[int], mark: int) -> None:
    """Leave these staged records out of the writes (1: refused, 2: the same after all)."""
    if not ids:
        return
    with stage.connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {TABLE} SET skip = %s WHERE record_id = %s", [(mark, i) for i in ids])


def write(stage: Stage, district_id: int, obj_id: int, now, same: Callable[[dict, dict], bool]) -> tuple:
    """Update the changed records, insert the new ones: (inserted, updated)."""
    connection = stage.connection
    stamp = connection.ops.adapt_datetimefield_value(now)
    equal = "d.parent_ids = s.parent_ids AND d.payload = s.payload AND d.state_excluded = s.state_excluded"
    with connection.cursor() as cursor:
        # The rows stored otherwise than staged that are the same record all the same
        # (do_load's comparison: null counts as absent, dicts compare by content).
        maybe = f"NOT ({equal})"
        if stage.postgres:
            # Only those whose content is equal once every null is stripped can be.
            maybe += (
                " AND d.parent_ids = s.parent_ids AND d.state_excluded = s.state_excluded"
                " AND jsonb_strip_nulls(d.payload) = jsonb_strip_nulls(s.payload)"
            )
        cursor.execute(
            f"SELECT s.record_id, d.parent_ids, s.parent_ids, d.payload, s.payload, "
            f"d.state_excluded, s.state_excluded FROM {TABLE} s JOIN {RECORDS} d ON {_join()} "
            f"WHERE s.skip = 0 AND {maybe}",
            [district_id, obj_id],
        )
        unchanged = []
        while batch := cursor.fetchmany(FETCH):
            for rid, old_parents, parents, old, new, old_excluded, excluded in batch:
                if (
                    _loads(old_parents) == _loads(parents)
                    and bool(old_excluded) == bool(excluded)
                    and same(_loads(old), _loads(new))
                ):
                    unchanged.append(rid)
        skip(stage, unchanged, 2)
        cursor.execute(
            f"UPDATE {RECORDS} AS d SET school_year = s.school_year, parent_ids = s.parent_ids, "
            "payload = s.payload, state_excluded = s.state_excluded, changed_at = %s "
            f"FROM {TABLE} AS s WHERE {_join()} AND s.skip = 0 AND NOT ({equal})",
            [stamp, district_id, obj_id],
        )
        updated = cursor.rowcount
        # In file order: the records stream to the state by primary key.
        cursor.execute(
            f"INSERT INTO {RECORDS} (district_id, sync_object_id, record_id, school_year, parent_ids, "
            f"payload, state_excluded, changed_at) SELECT %s, %s, s.record_id, s.school_year, "
            f"s.parent_ids, s.payload, s.state_excluded, %s FROM {TABLE} s WHERE s.skip = 0 "
            f"AND NOT EXISTS (SELECT 1 FROM {RECORDS} d WHERE {_join()}) ORDER BY s.line",
            [district_id, obj_id, stamp, district_id, obj_id],
        )
        inserted = cursor.rowcount
    return inserted, updated


def delete_missing(stage: Stage, district_id: int, obj_id: int, year: int | None) -> int:
    """Delete the object's records (of the year) the file did not hold: an anti-join.

    Raw SQL, so the district's records_deleted_at is stamped by the caller, as
    DistrictRecord's QuerySet delete stamps it (nothing else hangs on a record).
    """
    scope = "d.district_id = %s AND d.sync_object_id = %s"
    params: list = [district_id, obj_id]
    if year is not None:
        scope += " AND d.school_year = %s"
        params.append(year)
    with stage.connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {RECORDS} AS d WHERE {scope} "
            f"AND NOT EXISTS (SELECT 1 FROM {TABLE} s WHERE s.record_id = d.record_id)",
            params,
        )
        return cursor.rowcount


def _dumps(value) -> str:
    try:
        return ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False)
    except OverflowError:  # an integer past 64 bits, which json writes
        return json.dumps(value)


def _path(name: str) -> str:
    """A payload key as a JSON path for SQLite's json_extract."""
    return "$." + json.dumps(name)
