"""Compare one object of one district and year between the two stores.

Two ways, one answer. On PostgreSQL (both aliases) each side streams only
(record id, a hash of the record's canonical text) computed in its database, in
keyset pages of the same id range; the pages are compared as sets, and only the
ids whose hashes differ, or that one side lacks, are read in full and judged.
Elsewhere (SQLite, the embedded default) both sides are read in full as text,
keyset-paginated, and merged like a sorted merge join. Either way memory holds a
page per side whatever the district's size, and matching records are counted in
bulk (`Matched`), not one Outcome each. Pure of writes: the caller stores what
`compare` yields.
"""

from __future__ import annotations

import json
import queue
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import itemgetter

from django.db import connections
from django.db.models import BigIntegerField, BooleanField, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from history.models import DISBatchHistory, ErrorLog, StepStatus
from resync.models import District, ResyncRequest, SyncObject, record_scope
from resync.rules import Reason

from .models import DISVerificationDifference

Kind = DISVerificationDifference.Kind
MATCHING = "matching"
# JSON columns are read as text: equal text needs no decoding, which is most of
# the cost of reading a row; only rows whose text differs are decoded.
DISTRICT_ROW = ("record_id", "school_year", "parents_text", "payload_text", "state_excluded", "changed_at")
STATE_ROW = ("record_id", "school_year", "parents_text", "payload_text")
AS_TEXT = {"parents_text": Cast("parent_ids", TextField()), "payload_text": Cast("payload", TextField())}

# jsonb's text output is canonical (keys sorted, duplicates dropped, spacing fixed), so
# equal values give equal text on any two servers, and equal text means equal hashes.
# hashtextextended (64 bits, the hash PostgreSQL partitions by) costs a fifth of md5 per
# row here (md5 took most of a page's time). Equal hashes are trusted as equal records
# (a 2^-64 chance per record); unequal ones only cost a full read, which judges exactly,
# so two servers hashing differently would make the compare slow, never wrong. The
# separator cannot make two different records one text: each JSON text ends where it must.
CANONICAL = "coalesce(school_year::text, '') || '|' || parent_ids::text || '|' || payload::text"
HASH = f"hashtextextended({CANONICAL}, 0)"
# A state-excluded record never matches (judge() decides it): no hash, so no equal pair.
DISTRICT_HASH = f"CASE WHEN state_excluded THEN NULL ELSE {HASH} END"
PAGE_CHUNKS = 10  # a hash page holds this many chunks' worth of (id, hash) pairs


@dataclass(frozen=True)
class Outcome:
    """How one record compares: `kind` is a Kind or MATCHING."""

    record_id: int
    kind: str
    reason: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Matched:
    """`count` more records match: counted in bulk, with no Outcome of their own."""

    count: int


def sides(district: District, obj: SyncObject, year: int) -> tuple:
    """(district records, state records) of the object, district and year, as a resync scopes them."""
    district_side, state_side = record_scope(district, obj, year)
    return district_side.annotate(**AS_TEXT), state_side.annotate(**AS_TEXT)


def stream(qs, fields: tuple[str, ...], size: int) -> Iterator[tuple]:
    """Rows ordered by record id, one short keyset query per chunk (no cursor held open)."""
    last = None
    while True:
        page = qs if last is None else qs.filter(record_id__gt=last)
        rows = list(page.order_by("record_id").values_list(*fields)[:size])
        yield from rows
        if len(rows) < size:
            return
        last = rows[-1][0]


def merge(district_rows: Iterator[tuple], state_rows: Iterator[tuple]) -> Iterator[tuple]:
    """Yield (district row or None, state row or None) pairs by ascending record id."""
    d, s = next(district_rows, None), next(state_rows, None)
    while d is not None or s is not None:
        if s is None or (d is not None and d[0] < s[0]):
            yield d, None
            d = next(district_rows, None)
        elif d is None or s[0] < d[0]:
            yield None, s
            s = next(state_rows, None)
        else:
            yield d, s
            d, s = next(district_rows, None), next(state_rows, None)


def judge(d: tuple | None, s: tuple | None) -> Outcome | None:
    """Judge a pair; None for a district-only record, which the Error Log must decide."""
    if d is None:
        return Outcome(s[0], Kind.ONLY_STATE)
    if d[4]:  # state-excluded: never allowed at the state
        if s is None:
            return Outcome(d[0], Kind.NOT_ALLOWED, Reason.STATE_EXCLUDED)
        return Outcome(d[0], Kind.DIFFERENT, Reason.STATE_EXCLUDED, "state-excluded, yet at the state")
    if s is None:
        return None
    changed = [name for name, same in differs(d, s) if not same]
    if changed:
        return Outcome(d[0], Kind.DIFFERENT, detail=", ".join(changed))
    return Outcome(d[0], MATCHING)


def differs(d: tuple, s: tuple) -> Iterator[tuple[str, bool]]:
    """(field, equal?) for each compared field."""
    yield "school_year", d[1] == s[1]
    yield "parent_ids", same_json(d[2], s[2])
    yield "payload", same_json(d[3], s[3])


def same_json(a: str | None, b: str | None) -> bool:
    """Equal JSON values: the same text, or equal once decoded (key order and
    spacing may differ between the two databases)."""
    if a == b:
        return True
    return a is not None and b is not None and json.loads(a) == json.loads(b)


def last_whole_step(
    district: District, obj: SyncObject, year: int, level: str = ResyncRequest.Level.DISTRICT
) -> DISBatchHistory | None:
    """The latest finished step that resynced the whole object: its Error Log says which
    district records the rules refused (a Selective Sync step saw only a few records).
    A district's run reads only the district's own steps: a state request's step, its
    Error Log and so its timing are the state's, and must not change what the district's
    verification reports. The state's run reads any."""
    steps = DISBatchHistory.objects.filter(
        district=district,
        sync_object=obj,
        status__in=(StepStatus.GREEN, StepStatus.YELLOW, StepStatus.RED),
        request__records__isnull=True,
    )
    if level != ResyncRequest.Level.STATE:
        steps = steps.filter(request__level=ResyncRequest.Level.DISTRICT)
    if obj.year_scoped:
        steps = steps.filter(school_year=year)
    return steps.order_by("-id").first()


def refused(step: DISBatchHistory | None, pending: list[tuple]) -> list[Outcome]:
    """Decide district-only records: not allowed when the last whole resync refused them
    for a rule and they have not changed since; otherwise a difference to resync.
    A missing parent is a failure a resync with Check Dependencies fixes, not a rule."""
    reasons = {}
    if step is not None and pending:
        reasons = dict(
            ErrorLog.objects.filter(step=step, record_id__in=[d[0] for d in pending]).values_list(
                "record_id", "reason"
            )
        )
    out = []
    for d in pending:
        reason = reasons.get(d[0], "")
        unchanged = step is not None and step.started_at is not None and d[5] <= step.started_at
        if reason and reason != Reason.PARENT_MISSING and unchanged:
            out.append(Outcome(d[0], Kind.NOT_ALLOWED, reason))
        else:
            out.append(Outcome(d[0], Kind.ONLY_DISTRICT, reason))
    return out


def hashed(district_side: QuerySet, state_side: QuerySet) -> bool:
    """Whether both sides can hash their records in their own database (PostgreSQL)."""
    return all(connections[qs.db].vendor == "postgresql" for qs in (district_side, state_side))


def compare(
    district: District,
    obj: SyncObject,
    year: int,
    chunk: int,
    level: str = ResyncRequest.Level.DISTRICT,
    by_hash: bool | None = None,
) -> Iterator[Outcome | Matched]:
    """Every record of the object at either side: each one that does not match
    judged, in record id order (district-only records wait in batches of `chunk`
    for one Error Log query), the matching ones counted in `Matched` batches.
    `level` is the run's; `by_hash` forces a path (None: hashes where both sides
    are PostgreSQL). Both paths yield the same outcomes in the same order."""
    district_side, state_side = sides(district, obj, year)
    if by_hash is None:
        by_hash = hashed(district_side, state_side)
    pairs = (
        hash_pairs(district_side, state_side, chunk)
        if by_hash
        else text_pairs(district_side, state_side, chunk)
    )
    steps: list = []  # the last whole step, looked up once a district-only record needs it

    def decide(pending: list[tuple]) -> list[Outcome]:
        if pending and not steps:
            steps.append(last_whole_step(district, obj, year, level))
        return refused(steps[0] if steps else None, pending)

    pending: list[tuple] = []
    for item in pairs:
        if type(item) is Matched:
            yield item
            continue
        outcome = judge(*item)
        if outcome is None:
            pending.append(item[0])
            if len(pending) >= chunk:
                yield from decide(pending)
                pending = []
        elif outcome.kind == MATCHING:
            yield Matched(1)
        else:
            yield outcome
    yield from decide(pending)


def text_pairs(district_side: QuerySet, state_side: QuerySet, chunk: int) -> Iterator[tuple | Matched]:
    """Every record's pair of full rows; the pairs of equal text come as Matched batches
    (equal text needs no decoding, which is most of the cost of a row)."""
    same = 0
    for d, s in merge(stream(district_side, DISTRICT_ROW, chunk), stream(state_side, STATE_ROW, chunk)):
        if d is not None and s is not None and not d[4] and d[1:4] == s[1:4]:
            same += 1
            if same >= chunk:
                yield Matched(same)
                same = 0
        else:
            yield d, s
    if same:
        yield Matched(same)


def hash_pairs(district_side: QuerySet, state_side: QuerySet, chunk: int) -> Iterator[tuple | Matched]:
    """The same as text_pairs, from hashes: per page of ids, the records whose (id, hash)
    both sides hold are Matched; only the others are read in full and paired."""
    district_keys = district_side.annotate(key=RawSQL(DISTRICT_HASH, [], BigIntegerField()))
    state_keys = state_side.annotate(key=RawSQL(HASH, [], BigIntegerField()))
    threaded = threads_allowed(district_side.db, state_side.db)
    first = itemgetter(0)
    for d_page, s_page in pages(district_keys, state_keys, chunk * PAGE_CHUNKS, threaded):
        if d_page == s_page:  # the common page: compared in C, no set built (None never equals)
            if d_page:
                yield Matched(len(d_page))
            continue
        if len(d_page) == len(s_page) and list(map(first, d_page)) == list(map(first, s_page)):
            # The same ids on both sides, some hashes apart (a changed payload): pair by
            # position, a tenth of the cost of two sets of a page.
            odd = [d[0] for d, s in zip(d_page, s_page, strict=True) if d != s]
            if len(d_page) > len(odd):
                yield Matched(len(d_page) - len(odd))
        else:
            d_set, s_set = set(d_page), set(s_page)
            both = d_set & s_set
            if both:
                yield Matched(len(both))
            odd = sorted({r[0] for r in d_set - both} | {r[0] for r in s_set - both})
        for i in range(0, len(odd), chunk):
            ids = odd[i : i + chunk]
            yield from merge(
                iter(full_rows(district_side, DISTRICT_ROW, ids)), iter(full_rows(state_side, STATE_ROW, ids))
            )


def pages(
    district_keys: QuerySet, state_keys: QuerySet, size: int, threaded: bool = False
) -> Iterator[tuple[list, list]]:
    """(district rows, state rows) of (record id, key), covering the same id range, in
    order. Each side reads its own keyset pages of `size` (in a thread of its own when
    `threaded`, so both databases work at once and the next pages are read while these
    are compared); a range ends where the side that reaches less far ends, and what
    lies past it waits for the next range. At most two pages a side are held."""
    streams = [side_pages(qs, size, threaded) for qs in (district_keys, state_keys)]
    held: list[list] = [[], []]
    open_ = [True, True]
    first = itemgetter(0)
    while True:
        for i in (0, 1):
            while open_[i] and not held[i]:
                page = next(streams[i], None)
                if page is None:
                    open_[i] = False
                else:
                    held[i] = page
        ends = [held[i][-1][0] for i in (0, 1) if open_[i]]
        if not ends:
            yield held[0], held[1]
            return
        end = min(ends)
        cuts = [bisect_right(rows, end, key=first) for rows in held]
        yield held[0][: cuts[0]], held[1][: cuts[1]]
        held = [held[0][cuts[0] :], held[1][cuts[1] :]]


def side_pages(keys: QuerySet, size: int, threaded: bool) -> Iterator[list[tuple]]:
    """One side's pages: the first read here, the rest by a thread only if there are
    more (a thread's new connection costs more than a small object's whole read)."""
    page = key_page(keys, None, size)
    if page:
        yield page
    if len(page) == size:
        yield from ahead(lambda: key_pages(keys, size, page[-1][0]), threaded)


def key_pages(keys: QuerySet, size: int, after: int | None = None) -> Iterator[list[tuple]]:
    """One side's (record id, key) rows past `after` in keyset pages of `size`, the last one short."""
    while True:
        page = key_page(keys, after, size)
        if page:
            yield page
        if len(page) < size:
            return
        after = page[-1][0]


DONE = object()


def ahead(make: Callable[[], Iterator[list]], threaded: bool) -> Iterator[list]:
    """The pages `make()` yields, read a page or two ahead by a thread when `threaded`
    (its own database connection, closed when it ends; an error is raised here)."""
    if not threaded:
        yield from make()
        return
    pipe: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                pipe.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for page in make():
                if not put(page):
                    return
            put(DONE)
        except BaseException as e:  # raised in the reading thread, below
            put(e)
        finally:
            connections.close_all()  # this thread's connections only

    reader = threading.Thread(target=run, daemon=True)
    reader.start()
    try:
        while (item := pipe.get()) is not DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def threads_allowed(*aliases: str) -> bool:
    """Readers on threads of their own see only committed rows: not inside a transaction
    (where this connection may see rows of its own a new one would not)."""
    return not any(connections[a].in_atomic_block for a in aliases)


def key_page(keys: QuerySet, after: int | None, size: int) -> list[tuple]:
    """Up to `size` (record id, key) rows past `after`. Straight from the cursor: two
    integers a row need none of the ORM's per-row converters, which took a third of the
    time of a page."""
    page = keys if after is None else keys.filter(record_id__gt=after)
    query = page.order_by("record_id").values_list("record_id", "key")[:size].query
    sql, params = query.get_compiler(using=keys.db).as_sql()
    with connections[keys.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def full_rows(qs: QuerySet, fields: tuple[str, ...], ids: list[int]) -> list[tuple]:
    """The full rows of `ids` (one query, one array parameter however many ids)."""
    among = RawSQL("record_id = ANY(%s)", [ids], output_field=BooleanField())
    return list(qs.filter(among).order_by("record_id").values_list(*fields))
