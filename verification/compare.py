"""Compare one object of one district and year between the two stores.

Both sides are read ordered by record id in keyset-paginated chunks and merged
like a sorted merge join: memory holds one chunk per side and the rows waiting
to be written, whatever the district's size. Pure of writes: the caller stores
what `compare` yields.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import TextField
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


@dataclass(frozen=True)
class Outcome:
    """How one record compares: `kind` is a Kind or MATCHING."""

    record_id: int
    kind: str
    reason: str = ""
    detail: str = ""


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


def compare(
    district: District, obj: SyncObject, year: int, chunk: int, level: str = ResyncRequest.Level.DISTRICT
) -> Iterator[Outcome]:
    """Every record of the object at either side, judged (district-only records
    wait in batches of `chunk` for one Error Log query); `level` is the run's."""
    district_side, state_side = sides(district, obj, year)
    step = last_whole_step(district, obj, year, level)
    pending: list[tuple] = []
    for d, s in merge(stream(district_side, DISTRICT_ROW, chunk), stream(state_side, STATE_ROW, chunk)):
        outcome = judge(d, s)
        if outcome is None:
            pending.append(d)
            if len(pending) >= chunk:
                yield from refused(step, pending)
                pending = []
        else:
            yield outcome
    yield from refused(step, pending)
