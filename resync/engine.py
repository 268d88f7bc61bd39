"""Run one resync step: one object of one request, district side to state side.

The district's records of the object stream in chunks by primary key (flat
memory whatever the district's size). Each chunk is judged by resync.rules
against a context gathered in a few set-based queries, the valid records are
upserted into the state store, the others land in the Error Log. The state
side is written in one transaction per step, so a step killed half-way leaves
the state as it was and a re-run converges to the same data.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from history.models import DISBatchHistory, ErrorLog, StepStatus
from resync import rules
from resync.models import DistrictRecord, StateRecord, SyncObject

PROGRESS_SECONDS = 1.0  # progress is written at most once a chunk and about once a second
ROW = ("id", "record_id", "parent_ids", "payload", "state_excluded", "school_year")


def scope(step: DISBatchHistory) -> tuple:
    """(district records, state records) of the step's object, district and year."""
    obj = step.sync_object
    district_side = DistrictRecord.objects.filter(district_id=step.district_id, sync_object=obj)
    state_side = StateRecord.objects.filter(district_code=step.district.code, sync_object=obj.name)
    if obj.year_scoped:
        district_side = district_side.filter(school_year=step.school_year)
        state_side = state_side.filter(school_year=step.school_year)
    # Selective Sync narrows both sides to its records, so the step removes at
    # the state only those of them the district no longer has.
    if step.request.records is not None:
        district_side = district_side.filter(record_id__in=step.request.records)
        state_side = state_side.filter(record_id__in=step.request.records)
    return district_side, state_side


def chunks(qs, size: int) -> Iterator[list[tuple]]:
    """Keyset pagination: each chunk is one short query, no cursor held open."""
    last = 0
    while True:
        rows = list(qs.filter(id__gt=last).order_by("id").values_list(*ROW)[:size])
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def blocked_tests(step: DISBatchHistory) -> set[int]:
    """Tests with no end year that have a score without a date: their sync is blocked."""
    district_side, _ = scope(step)
    undated = district_side.filter(Q(payload__date=None) | Q(payload__date__isnull=True))
    test_ids = {int(p["Test"]) for p in undated.values_list("parent_ids", flat=True) if p.get("Test")}
    if not test_ids:
        return set()
    tests = DistrictRecord.objects.filter(
        district_id=step.district_id, sync_object__name="Test", record_id__in=test_ids
    ).values_list("record_id", "payload")
    return {rid for rid, payload in tests if not payload.get("end_year")}


def context(step: DISBatchHistory, parents: tuple[str, ...], rows: list[tuple], blocked: set[int]):
    code, name = step.district.code, step.sync_object.name
    present = {}
    for parent in parents:
        ids = {int(r[2][parent]) for r in rows if r[2].get(parent) is not None}
        present[parent] = set(
            StateRecord.objects.filter(district_code=code, sync_object=parent, record_id__in=ids).values_list(
                "record_id", flat=True
            )
        )
    tests, enrolled = {}, set()
    if name == "TestScore":
        test_ids = {int(r[2]["Test"]) for r in rows if r[2].get("Test") is not None}
        tests = dict(
            DistrictRecord.objects.filter(
                district_id=step.district_id, sync_object__name="Test", record_id__in=test_ids
            ).values_list("record_id", "payload")
        )
        persons = {int(r[2]["PersonIdentity"]) for r in rows if r[2].get("PersonIdentity") is not None}
        active = DistrictRecord.objects.filter(
            district_id=step.district_id,
            sync_object__name="Enrollment",
            school_year=step.school_year,
            state_excluded=False,
            payload__end_date=None,
            parent_ids__PersonIdentity__in=list(persons),
        ).values_list("parent_ids", flat=True)
        enrolled = {int(p["PersonIdentity"]) for p in active}
    return rules.Context(name, parents, step.school_year, present, tests, blocked, enrolled)


def claim(step_id: int, worker: str) -> DISBatchHistory | None:
    """Take a queued step for this worker; None if another took it or it is no longer queued."""
    now = timezone.now()
    taken = DISBatchHistory.objects.filter(pk=step_id, status=StepStatus.QUEUED).update(
        status=StepStatus.RUNNING,
        started_at=now,
        heartbeat_at=now,
        worker=worker,
        processed=0,
        errors=0,
        attempts=F("attempts") + 1,
    )
    if not taken:
        return None
    return DISBatchHistory.objects.select_related(
        "district", "sync_object", "request", "request__requested_by"
    ).get(pk=step_id)


def run_step(step: DISBatchHistory, on_progress=None) -> DISBatchHistory:
    """Move the step's records to the state and count them. The step must be claimed (running)."""
    # A retried step starts its Error Log afresh: nothing is counted twice.
    ErrorLog.objects.filter(step=step).delete()
    enabled = set(SyncObject.objects.enabled().values_list("name", flat=True))
    parents = tuple(p.name for p in step.sync_object.parents.all() if p.name in enabled)
    blocked = blocked_tests(step) if step.sync_object.name == "TestScore" else set()
    district_side, state_side = scope(step)
    processed = errors = 0
    last_write = time.monotonic()
    with transaction.atomic(using="state"):
        for rows in chunks(district_side, settings.RESYNC_CHUNK):
            ctx = context(step, parents, rows, blocked)
            now = timezone.now()
            good, bad = [], []
            for _id, record_id, parent_ids, payload, excluded, year in rows:
                failure = rules.check(rules.Record(record_id, parent_ids, payload, excluded), ctx)
                if failure:
                    bad.append(
                        ErrorLog(
                            step=step,
                            district_id=step.district_id,
                            sync_object_id=step.sync_object_id,
                            record_id=record_id,
                            reason=failure[0],
                            message=failure[1][:300],
                        )
                    )
                else:
                    good.append(
                        StateRecord(
                            district_code=step.district.code,
                            sync_object=step.sync_object.name,
                            school_year=year,
                            record_id=record_id,
                            parent_ids=parent_ids,
                            payload=payload,
                            step=step.pk,
                            synced_at=now,
                        )
                    )
            StateRecord.objects.bulk_create(
                good,
                update_conflicts=True,
                unique_fields=["district_code", "sync_object", "record_id"],
                update_fields=["school_year", "parent_ids", "payload", "step", "synced_at"],
            )
            ErrorLog.objects.bulk_create(bad)
            processed += len(rows)
            errors += len(bad)
            if time.monotonic() - last_write >= PROGRESS_SECONDS:
                last_write = time.monotonic()
                DISBatchHistory.objects.filter(pk=step.pk).update(
                    processed=processed, errors=errors, heartbeat_at=timezone.now()
                )
                if on_progress:
                    step.processed, step.errors = processed, errors
                    on_progress(step)
        # What the district no longer has, and what errored, leaves the state.
        state_side.exclude(step=step.pk).delete()
    step.processed, step.errors = processed, errors
    return step
