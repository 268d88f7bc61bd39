"""What RQ workers run for verifications; the actions do the work."""

from __future__ import annotations

import logging
import traceback

from resync.actions import worker_name

from . import actions
from .models import VerificationRun

log = logging.getLogger(__name__)


def run_verification_job(run_id: int) -> None:
    run = actions.claim(run_id, worker_name())
    if run is None:
        log.info("verification %s is not queued any more; skipping", run_id)
        return
    try:
        actions.run_verification(run)
    except Exception as e:
        log.exception("verification %s failed", run_id)
        run = VerificationRun.objects.select_related("district", "requested_by").get(pk=run_id)
        actions.do_finish_run(run, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}")
