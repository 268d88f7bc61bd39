"""Who may use the Verification Summary: its R/W/D rights and the state's switch.

The permissions live on the verification app's models; each is combined with the
district right of resync.rights (a verification reads the district's records).
"""

from __future__ import annotations

from core.errors import RightsError
from resync.models import District
from resync.rights import holds, is_state, may_resync

from .models import VerificationSetting

VERIFY_VIEW = "verification.view_verificationrun"  # Verification Summary R
VERIFY_RUN = "verification.run_verification"  # Verification Summary W
VERIFY_DELETE = "verification.delete_verificationrun"  # Verification Summary D
VERIFY_SWITCH = "verification.change_verificationsetting"  # the state's switch


def district_verification_on() -> bool:
    return VerificationSetting.current().district_initiated


def may_view_verification(user) -> bool:
    return holds(user, VERIFY_VIEW)


def may_delete_verification(user) -> bool:
    return holds(user, VERIFY_DELETE)


def may_switch_verification(user) -> bool:
    """The state's switch for district-initiated verification."""
    return is_state(user) and holds(user, VERIFY_SWITCH)


def check_verification(user, district: District) -> None:
    """May `user` run a verification of `district`? Names what is missing."""
    if not may_resync(user, district):
        raise RightsError(f"You have no right to verify district {district.code}.")
    if not holds(user, VERIFY_RUN):
        raise RightsError("Running a verification needs the Verification Summary W right.")
    if not is_state(user) and not district_verification_on():
        raise RightsError("The state has switched district-initiated verification off.")


def may_run_verification(user) -> bool:
    """Whether to offer the Run button at all (check_verification decides per district)."""
    return holds(user, VERIFY_RUN) and (is_state(user) or district_verification_on())
