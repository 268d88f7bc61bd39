"""Who reads the trail: the state's administrators (state R and W) all of it; a holder of
audit R (`audit.view_auditentry`: the District Administrators, audit 0002) their
districts' entries minus the state's (the rule resync.rights.visible_q writes)."""

from __future__ import annotations

from django.db.models import QuerySet

from audit.models import AuditEntry
from resync import groups, rights

READ = "audit.view_auditentry"
# Granted by audit 0002 (resync.groups.grant). The State Administrators need no list of
# their own: state R and W read it all, and their group's rights stay as resync.groups lists.
GROUPS = {groups.DISTRICT_ADMINS: [READ]}


def may_read(user) -> bool:
    # A permission, not a group lookup: Django caches it, and every admin page's
    # sidebar asks.
    return rights.holds(user, READ) or rights.may_edit_schemas(user)


def readable(user) -> QuerySet[AuditEntry]:
    """The entries `user` may read: none without audit R."""
    if not may_read(user):
        return AuditEntry.objects.none()
    if rights.may_edit_schemas(user):
        return AuditEntry.objects.all()
    return AuditEntry.objects.filter(rights.visible_q(user, level="level", district="district"))
