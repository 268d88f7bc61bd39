"""Admin change lists answer a bad filter with a 400 naming it.

Django's ChangeList has two gaps: a date_hierarchy year at the edge of the
calendar (`created_at__year=9999`: the page computes the first day of year
10000) raises ValueError or OverflowError, a 500; and every other bad lookup
(`created_at__gte=someday`, month 13) redirects to `?e=1`, which names nothing.
`SafeFilters` closes both for every ModelAdmin: `SafeAdminSite` mixes it into
each one it registers, so a new admin page cannot forget it.
"""

from __future__ import annotations

import datetime as dt

from django.contrib.admin import AdminSite, ModelAdmin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import BadRequest
from django.http import HttpRequest, QueryDict

from core.parsers import is_whole_number

# One year inside datetime's own range on each side, so the year after (the
# page's upper bound) and a shift to UTC in any time zone stay in range too.
YEARS = (dt.MINYEAR + 1, dt.MAXYEAR - 1)


class BadFilter(BadRequest):
    """A 400; core.errors.bad_request shows its message."""


def check_date_hierarchy(field: str, params: QueryDict) -> None:
    """Refuse, naming it, a date_hierarchy year, month or day the change list cannot compute with."""
    year = params.get(f"{field}__year")
    if year is None:
        return  # Django ignores a month or day without a year
    parts = {}
    for part, (low, high) in (("year", YEARS), ("month", (1, 12)), ("day", (1, 31))):
        raw = params.get(f"{field}__{part}")
        if raw is None:
            continue
        if not is_whole_number(raw) or not low <= int(raw) <= high:
            raise BadFilter(f"{field}__{part}={raw!r} is not a {part} from {low} to {high}.")
        parts[part] = int(raw)
    try:
        dt.date(parts["year"], parts.get("month", 1), parts.get("day", 1))
    except ValueError as e:
        shown = "-".join(str(parts[p]) for p in ("year", "month", "day") if p in parts)
        raise BadFilter(f"{field}__year/__month/__day {shown} is not a date: {e}.") from None


class SafeFilters:
    """For a ModelAdmin: a bad filter is a 400 naming it, not a 500 nor a redirect to ?e=1."""

    def get_changelist_instance(self, request: HttpRequest):
        if self.date_hierarchy:
            check_date_hierarchy(self.date_hierarchy, request.GET)
        try:
            return super().get_changelist_instance(request)
        except (IncorrectLookupParameters, OverflowError) as e:
            # OverflowError: a date filter that only leaves the calendar once moved to UTC.
            query = request.GET.urlencode()
            raise BadFilter(f"Bad filter in ?{query[:300]}: {e}") from None


class SafeAdminSite(AdminSite):
    """The default admin site (statesync.apps.AdminConfig): every ModelAdmin gets SafeFilters."""

    def register(self, model_or_iterable, admin_class=None, **options) -> None:
        admin_class = admin_class or ModelAdmin
        if not issubclass(admin_class, SafeFilters):
            admin_class = type(
                admin_class.__name__,
                (SafeFilters, admin_class),
                {"__module__": admin_class.__module__, "__qualname__": admin_class.__qualname__},
            )
        super().register(model_or_iterable, admin_class, **options)
