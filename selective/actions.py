"""Selective Sync: resync single PersonIdentity or Enrollment records.

A Selective Sync is a batch resync of one object narrowed to its records: it is
checked as any resync (tool.actions.check_resync) and runs the same steps, with the
same Error Log and history. check_* validates and authorises; do_* writes.
"""

from __future__ import annotations

from dataclasses import replace

from core.errors import ResyncError
from resync.models import District, DistrictRecord, ResyncRequest, StateRecord, SyncObject
from tool.actions import Checked, check_resync, do_request_resync, level_for

from .rights import check_selective

SELECTIVE_OBJECTS = ("PersonIdentity", "Enrollment")
SELECTIVE_MAX = 1000


def parse_record_ids(raw) -> list[int]:
    """Record ids from a list or from text separated by commas, spaces or new lines."""
    items = raw.replace(",", " ").split() if isinstance(raw, str) else list(raw or [])
    ids = []
    for item in items:
        # An id is a JSON integer or ASCII digits: int() would also take True, 7.9,
        # '٣' and '1_000', none of which names a record.
        text = item.strip() if isinstance(item, str) else item
        digits = text[1:] if isinstance(text, str) and text[:1] in "+-" else text
        if isinstance(digits, str) and digits.isascii() and digits.isdigit() and len(digits) < 100:
            value = int(text)
        elif isinstance(text, int) and not isinstance(text, bool):
            value = text
        else:
            raise ResyncError(f"Record id {item!r} is not a whole number.", "records")
        if value <= 0:
            raise ResyncError(f"Record id {value} is not a positive number.", "records")
        if value >= 2**63:
            raise ResyncError(f"Record id {value} is too large.", "records")
        ids.append(value)
    if not ids:
        raise ResyncError("Give at least one record id.", "records")
    ids = sorted(set(ids))
    if len(ids) > SELECTIVE_MAX:
        raise ResyncError(f"At most {SELECTIVE_MAX} records at a time; got {len(ids)}.", "records")
    return ids


def check_selective_sync(district: District, year: int | None, obj: str, records, user=None) -> Checked:
    """Validate and authorise a Selective Sync: single PersonIdentity records by district
    person id, or Enrollment records by enrollment id; then the batch's own check."""
    if user is not None:
        check_selective(user, district)
    name = {n.lower(): n for n in SELECTIVE_OBJECTS}.get(str(obj or "").strip().lower())
    if name is None:
        raise ResyncError(
            f"Selective Sync resyncs PersonIdentity or Enrollment records, not {obj!r}.", "object"
        )
    ids = parse_record_ids(records)
    checked = check_resync(district, year, [name], False, user=user, level=level_for(user))
    # A record only the state still holds is allowed: the resync removes it there.
    year_scoped = SyncObject.objects.filter(name=name, year_scoped=True).exists()
    at_district = DistrictRecord.objects.filter(district=district, sync_object__name=name, record_id__in=ids)
    at_state = StateRecord.objects.filter(district_code=district.code, sync_object=name, record_id__in=ids)
    if year_scoped:
        at_district = at_district.filter(school_year=checked.year)
        at_state = at_state.filter(school_year=checked.year)
    found = set(at_district.values_list("record_id", flat=True)) | set(
        at_state.values_list("record_id", flat=True)
    )
    missing = [str(i) for i in ids if i not in found]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ResyncError(
            f"No {name} record {shown} at district {district.code} or at the state for {checked.year}.",
            "records",
        )
    return replace(checked, records=ids)


def do_selective_sync(checked: Checked) -> ResyncRequest:
    """A Selective Sync is a batch of one object narrowed to its records: same steps,
    Error Log and history."""
    if not checked.records:
        raise ResyncError("A Selective Sync needs the records check_selective_sync found.", "records")
    return do_request_resync(checked)
