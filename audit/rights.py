"""Who reads the trail: audit R (`audit.view_auditentry`, both groups hold it: audit 0002).
The state's administrators read all of it; anyone else their districts' entries minus the
state's (the rule resync.rights.visible_q writes)."""

from __future__ import annotations

from django.db.models import QuerySet

from audit.models import AuditEntry
from resync import groups, rights

READ = "audit.view_auditentry"
# Granted by audit 0002 (resync.groups.grant): both groups read the trail.
GROUPS = {groups.STATE_ADMINS: [READ], groups.DISTRICT_ADMINS: [READ]}


def may_read(user) -> bool:
    # A permission, not a group lookup: Django caches it, and every admin page's
    # sidebar asks.
    return rights.holds(user, READ)


def readable(user) -> QuerySet[AuditEntry]:
    """The entries `user` may read: none without audit R."""
    if not may_read(user):
        return AuditEntry.objects.none()
    if rights.may_edit_schemas(user):
        return AuditEntry.objects.all()
    return AuditEntry.objects.filter(rights.visible_q(user, level="level", district="district"))
