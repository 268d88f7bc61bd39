"""Who may load a district's records: the district data W right (`loads.load_district_data`,
a global permission: the State Administrator group holds it, loads 0002) combined with
the district right of resync.rights, which a state user holds for every district."""

from __future__ import annotations

from core.errors import RightsError
from resync.models import District
from resync.rights import holds, may_resync

LOAD = "loads.load_district_data"  # District data W


def may_load(user, district: District) -> bool:
    return holds(user, LOAD) and may_resync(user, district)


def check_load_right(user, district: District) -> None:
    """May `user` load records into `district`? Names what is missing."""
    if not may_resync(user, district):
        raise RightsError(f"You have no right to manage district {district.code}.")
    if not holds(user, LOAD):
        raise RightsError("Loading district records needs the district data W right.")
