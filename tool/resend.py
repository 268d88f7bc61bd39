"""Resend what failed: a partial resync of exactly the objects with errors.

The errors come as Error Log rows (a request's, an object's, an Error Log filter's),
already narrowed to what the user may see. They must be of one district and school
year, as a request is; Check Dependencies is asked when a parent was missing, so
the parents are sent first. The request itself is checked and stored by
tool.actions.check_resync / do_request_resync, as any resync is: the same rights,
the same refusals, the same double-click guard.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db.models import Count, QuerySet

from core.errors import ResyncError
from history.models import ErrorLog
from resync.models import District, ResyncRequest
from resync.rules import Reason

from .actions import Checked, check_resync, do_request_resync, level_for


@dataclass(frozen=True)
class Resend:
    """What check_resend_failed allowed: the resync to send and the errors it answers."""

    checked: Checked
    errors: dict[str, int]  # object name -> its errors selected

    @property
    def total(self) -> int:
        return sum(self.errors.values())


def check_resend_failed(rows: QuerySet[ErrorLog], user: User | None = None) -> Resend:
    """The partial resync of the objects with errors among `rows`, checked as any resync.

    Raises ResyncError when `rows` hold none, or errors of several districts or school
    years (one request is of one district and year: filter to one); RightsError as
    check_resync does (an object the user may not resync, a parent Check Dependencies
    adds that they may not resync).
    """
    groups = list(
        rows.order_by()
        .values("district_id", "step__school_year", "sync_object__name", "reason")
        .annotate(n=Count("id"))
        .order_by("district_id", "step__school_year", "sync_object__name")
    )
    if not groups:
        raise ResyncError("No errors to resend: the Error Log selected holds none.", "errors")
    scopes = sorted({(g["district_id"], g["step__school_year"]) for g in groups})
    if len(scopes) > 1:
        codes = dict(District.objects.filter(pk__in={d for d, _ in scopes}).values_list("pk", "code"))
        named = ", ".join(f"district {codes[d]} {y}" for d, y in scopes)
        raise ResyncError(
            f"The errors selected are of {len(scopes)} districts or school years ({named}): "
            "filter the Error Log to one district and year to resend them.",
            "errors",
        )
    ((district_id, year),) = scopes
    errors: dict[str, int] = {}
    for g in groups:
        errors[g["sync_object__name"]] = errors.get(g["sync_object__name"], 0) + g["n"]
    parent_missing = any(g["reason"] == Reason.PARENT_MISSING for g in groups)
    district = District.objects.select_related("state").get(pk=district_id)
    checked = check_resync(district, year, sorted(errors), parent_missing, user=user, level=level_for(user))
    return Resend(checked, errors)


def do_resend_failed(resend: Resend) -> ResyncRequest:
    return do_request_resync(resend.checked)
