"""Who may switch a district's school year: the year switch right on District,
combined with the district right of resync.rights."""

from __future__ import annotations

from core.errors import RightsError
from resync.models import District
from resync.rights import holds, is_state, may_resync

YEAR_SWITCH = "resync.switch_year"


def may_switch_year(user) -> bool:
    return holds(user, YEAR_SWITCH)


def may_see_overview(user) -> bool:
    """The overview of every district's year: the state's, and whoever may switch."""
    return is_state(user) or may_switch_year(user)


def check_year_switch(user, district: District) -> None:
    """May `user` switch `district`'s school year? Names what is missing."""
    if not may_resync(user, district):
        raise RightsError(f"You have no right to manage district {district.code}.")
    if not may_switch_year(user):
        raise RightsError("Switching the school year needs the year switch right.")
