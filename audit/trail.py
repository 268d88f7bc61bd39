"""record(): the one function that writes the audit trail; every hook calls it."""

from __future__ import annotations

from django.db import models

from audit import doors
from audit.models import AuditEntry
from resync.models import District, ResyncRequest

# "Whoever is signed in": record() reads the current HTTP request's user.
CURRENT = object()


def record(
    action: str,
    obj: models.Model | None = None,
    *,
    user=CURRENT,
    district: District | None = None,
    level: str = ResyncRequest.Level.DISTRICT,
    detail: str = "",
    door: str | None = None,
) -> AuditEntry:
    """Append one entry: `user` did `action` to `obj` (its district unless named) through
    `door` (the current one, audit.doors, unless named). Written on the caller's
    database transaction: a change rolled back leaves no entry."""
    if user is CURRENT:
        user = doors.current_user()
    if district is None and obj is not None:
        district = obj if isinstance(obj, District) else getattr(obj, "district", None)
        district = district if isinstance(district, District) else None
    return AuditEntry.objects.create(
        user=user,
        username=getattr(user, "username", ""),
        door=door or doors.current(),
        district=district,
        district_code=district.code if district else "",
        level=level,
        action=action,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None and obj.pk is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        detail=detail,
    )
