"""Who may use Selective Sync: its R/W/D rights.

They are the view/use/delete permissions of the SelectiveSync proxy of ResyncRequest
(verification.models, where its content type has always been), each combined with the
district right of resync.rights.
"""

from __future__ import annotations

from core.errors import RightsError
from resync.models import District
from resync.rights import holds, may_resync

SELECTIVE_VIEW = "verification.view_selectivesync"  # Selective Sync R
SELECTIVE_USE = "verification.use_selectivesync"  # Selective Sync W
SELECTIVE_DELETE = "verification.delete_selectivesync"  # Selective Sync D


def may_view_selective(user) -> bool:
    return holds(user, SELECTIVE_VIEW)


def may_use_selective(user) -> bool:
    return holds(user, SELECTIVE_USE)


def may_delete_selective(user) -> bool:
    return holds(user, SELECTIVE_DELETE)


def check_selective(user, district: District) -> None:
    """May `user` send a Selective Sync of `district`? Names what is missing."""
    if not may_resync(user, district):
        raise RightsError(f"You have no right to resync district {district.code}.")
    if not may_use_selective(user):
        raise RightsError("Selective Sync needs its W right.")
