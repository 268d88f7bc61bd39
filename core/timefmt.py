"""Times as people read them: in one zone, with the zone named (issue 14, item 9).

Every page, live update and CSV a person reads writes a moment through `when()`, in
the zone of the district it belongs to (District.time_zone) or, for a row of no
district, the project's TIME_ZONE: "2027-06-30 14:02 CDT". The server formats, the
browser only shows the text it is given (static/resync/live.js `StateSync.when`), so a
live row and the same row after a reload read alike. The API is for programs and
stays ISO 8601 with its offset.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

FORMAT = "%Y-%m-%d %H:%M"


def default_zone() -> str:
    """A new district's zone: the project's TIME_ZONE (settings)."""
    return settings.TIME_ZONE


def validate_zone(name: str) -> None:
    """Refuse a name the IANA time zone database does not know, saying so."""
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"{name!r} is not a time zone: write an IANA name such as America/Chicago or UTC."
        ) from None


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    if not name or name != name.strip():
        raise ValueError(name)
    return ZoneInfo(name)


def zone(name: str | None = None) -> ZoneInfo:
    """The zone `name`, or the project's for none (or one no longer known)."""
    try:
        return _zone(name or default_zone())
    except (ZoneInfoNotFoundError, ValueError):
        return _zone(default_zone())


def zone_of(owner: object = None) -> ZoneInfo:
    """The zone of `owner`: a zone name, anything with a `time_zone` (a District), or the project's."""
    return zone(owner if isinstance(owner, str) else getattr(owner, "time_zone", None))


def when(moment: dt.datetime | str | None, owner: object = None) -> str:
    """`moment` in `owner`'s zone (zone_of), zone named: "2027-06-30 14:02 CDT"; "" for none."""
    if not isinstance(moment, dt.datetime):  # None, or a template's "" for a missing value
        return ""
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, dt.UTC)
    local = moment.astimezone(zone_of(owner))
    return f"{local:{FORMAT}} {local.tzname()}"


def column(field: str, description: str, owner: str = "district") -> Callable[[object, object], str]:
    """An admin column (list_display, readonly_fields) of `field` in the zone of the row's
    `owner` (its district), named; "—" for none. Assign it in a ModelAdmin's body and name
    it there: `created = timefmt.column("created_at", "Created")`, then "created"."""

    def shown(_admin: object, obj: object) -> str:
        return when(getattr(obj, field), getattr(obj, owner, None)) or "—"

    shown.short_description = description  # type: ignore[attr-defined]
    shown.admin_order_field = field  # type: ignore[attr-defined]
    return shown
