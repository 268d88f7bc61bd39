"""The school-year switch: the end-of-year rule, the switch, the start-of-year reminder.

The readiness rules are written once, as querysets whose district, year and moment
may be values or outer references: `end_of_year_resync`/`start_of_year_resync` ask
them for one district, and the overview admin annotates every district with the same
querysets, so the page and the switch always agree. check_* validates and authorises;
do_* writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import DateTimeField, F, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Greatest
from django.urls import reverse
from django.utils import timezone

from alerts.models import AlertName, ProcessAlert
from audit.trail import record
from core import timefmt
from core.errors import ResyncError
from resync import rights
from resync.models import District, DistrictRecord, ResyncRequest

from . import rights as year_rights

# Before any record: "no data change yet" compares as this, so every full resync counts.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class YearSwitch:
    district: District
    from_year: int
    end_of_year: ResyncRequest


def last_change_expression():
    """When a district's data last changed, as an expression on District rows: its latest
    record change (one index lookup) or its latest record deletion, whichever is later.
    A deleted record leaves no changed_at, yet the state holds it until the next resync.

    Greatest is NULL on SQLite when either side is, so each side falls back on the other."""
    changed = Subquery(
        DistrictRecord.objects.filter(district=OuterRef("pk"))
        .order_by("-changed_at")
        .values("changed_at")[:1]
    )
    deleted = F("records_deleted_at")
    return Greatest(Coalesce(changed, deleted), Coalesce(deleted, changed))


def last_change(district: District):
    """When the district's data last changed, read afresh (one query); the year-switch
    overview annotates the same expression, so both always agree."""
    last = District.objects.filter(pk=district.pk).annotate(last=last_change_expression())
    return last.values_list("last", flat=True).first()


def full_resyncs(district, year) -> QuerySet[ResyncRequest]:
    """The district's finished full resyncs of `year` in which every step ran (a failed
    step synced nothing). `district` and `year` may be OuterRefs.

    Only district-level requests count. The end- and start-of-year resyncs are the
    district's duty (the article: after the district finished entering its data); a
    state request is the state's, and a rule that counted it would tell the district,
    through its year-switch page, that the state had asked for every object. Whether a
    step failed is read from the request (steps_failed, written when it finished), so
    deleting DISBatchHistory rows (history D) never changes what the rule concludes."""
    return ResyncRequest.objects.filter(
        district=district,
        school_year=year,
        level=ResyncRequest.Level.DISTRICT,
        objects_asked__isnull=True,
        records__isnull=True,
        status=ResyncRequest.Status.FINISHED,
        steps_failed=0,
    )


def end_of_year_resyncs(district, year, changed) -> QuerySet[ResyncRequest]:
    """The full resyncs of `year` that started after the last data change `changed`
    (None: no change yet), latest finished first: one that started before the change
    may have read the records before they changed. Each argument may be an OuterRef."""
    after = Coalesce(changed, Value(NEVER), output_field=DateTimeField())
    return full_resyncs(district, year).filter(started_at__gt=after).order_by("-finished_at")


def start_of_year_resyncs(district, year, switched_at) -> QuerySet[ResyncRequest]:
    """The full resyncs of `year` that started since the year switch at `switched_at`
    (None: never switched, so none), first finished first. Each argument may be an OuterRef."""
    return full_resyncs(district, year).filter(started_at__gte=switched_at).order_by("finished_at")


def with_year_resyncs(districts: QuerySet[District]) -> QuerySet[District]:
    """Annotate each district with what the rules read and find: `changed` (its last data
    change), `end_of_year_id` (the resync that allows a switch now, or None) and
    `start_of_year_id` (the first full resync since its last switch, or None)."""
    year = OuterRef("scope_year")
    ready = end_of_year_resyncs(OuterRef("pk"), year, OuterRef("changed"))
    started = start_of_year_resyncs(OuterRef("pk"), year, OuterRef("year_switched_at"))
    return districts.annotate(changed=last_change_expression()).annotate(
        end_of_year_id=Subquery(ready.values("pk")[:1]),
        start_of_year_id=Subquery(started.values("pk")[:1]),
    )


def end_of_year_resync(district: District) -> ResyncRequest | None:
    """The full resync of the scoped year that allows switching to the next one now."""
    return end_of_year_resyncs(district, district.scope_year, last_change(district)).first()


def start_of_year_resync(district: District) -> ResyncRequest | None:
    """The first full resync of the scoped year after the last year switch."""
    if district.year_switched_at is None:
        return None
    return start_of_year_resyncs(district, district.scope_year, district.year_switched_at).first()


def may_switch(end_of_year_id: int | None, switched_at, start_of_year_id: int | None) -> bool:
    """The whole rule, on what with_year_resyncs annotates: an end-of-year full resync,
    and after an earlier switch also the start-of-year full resync of the year it began.
    Without the second, a district that switched could switch again at once on a full
    resync of the new year that ran before the switch (sync_next_year)."""
    return end_of_year_id is not None and (switched_at is None or start_of_year_id is not None)


def _end_of_year_or_refuse(district: District) -> ResyncRequest:
    if district.year_switched_at is not None and start_of_year_resync(district) is None:
        year = district.scope_year
        raise ResyncError(
            f"District {district.code} switched to {year} on "
            f"{timefmt.when(district.year_switched_at, district)}: run the start-of-year "
            f"full resync of {year} (then, at the end of the year, the end-of-year one) before "
            f"switching to {year + 1}.",
            "year",
        )
    request = end_of_year_resync(district)
    if request is None:
        year, changed = district.scope_year, last_change(district)
        deleted = District.objects.filter(pk=district.pk).values_list("records_deleted_at", flat=True).first()
        what = ", when records were deleted" if changed is not None and changed == deleted else ""
        since = f" that started after its last data change ({timefmt.when(changed, district)}{what})"
        raise ResyncError(
            f"District {district.code} has no finished full resync of {year}{since if changed else ''}: "
            f"run the end-of-year full resync of {year} before switching to {year + 1}.",
            "year",
        )
    return request


def check_year_switch(district: District, user=None) -> YearSwitch:
    """May the district's scoped year move to the next one? The end-of-year rule: only
    once a full resync of the current year finished after its last data change."""
    if user is not None:
        year_rights.check_year_switch(user, district)
    return YearSwitch(district, district.scope_year, _end_of_year_or_refuse(district))


def do_year_switch(switch: YearSwitch) -> District:
    """Switch to the next school year and remind the district of the start-of-year resync."""
    with transaction.atomic():
        district = District.objects.select_for_update().get(pk=switch.district.pk)
        if district.scope_year != switch.from_year:
            raise ResyncError(f"District {district.code} already syncs {district.scope_year}.", "year")
        # Data may have changed since the check: the rule holds under the lock.
        end = _end_of_year_or_refuse(district)
        district.scope_year += 1
        district.year_switched_at = timezone.now()
        district.end_of_year_request = end
        district.save(update_fields=["scope_year", "year_switched_at", "end_of_year_request"])
        year = district.scope_year
        ProcessAlert.objects.notify(
            rights.alert_recipients(district),
            name=AlertName.START_OF_YEAR_NEEDED,
            category=ProcessAlert.VERTICAL_INTEROPERABILITY,
            message=f"District {district.code} {district.name} now syncs school year {year - 1}-{year}: "
            f"run the start-of-year full resync of {year}.",
            link=reverse("admin:resync_tool", args=[district.code]),
            district=district,
        )
        record("year.switched", district, detail=f"school year {year - 1} to {year}")
    return district
