import time

import django_rq
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.doors import CommandDoor
from core.errors import ResyncError
from core.parsers import whole_number_arg
from history.models import FINISHED, DISBatchHistory, StepStatus
from resync.models import District, ResyncRequest
from runner.jobs import listening_workers
from runner.recovery import recover_stale_steps
from tool import actions

WORKER_CHECK_SECONDS = 5  # how often --wait asks Redis whether a worker still listens


class Command(CommandDoor, BaseCommand):
    help = "Request a resync of a district and, with --wait, show its progress and results."

    def add_arguments(self, parser):
        parser.add_argument("objects", nargs="*", help="Sync objects (any case).")
        parser.add_argument("--district", required=True, help="District code.")
        parser.add_argument(
            "--year", type=whole_number_arg, help="School year (ending year); the scoped year by default."
        )
        parser.add_argument("--all", action="store_true", help="Full resync.")
        parser.add_argument("--check-dependencies", action="store_true")
        parser.add_argument("--state", action="store_true", help="Send it as a state resync request.")
        parser.add_argument("--wait", action="store_true", help="Wait for the end and print the results.")
        parser.add_argument(
            "--work",
            action="store_true",
            help="Run the queue in this process (no separate worker); implies --wait.",
        )
        parser.add_argument(
            "--wait-for-worker",
            action="store_true",
            help="With --wait: keep waiting while no worker listens on the queue (default: stop and say so).",
        )

    def handle(
        self,
        *args,
        objects,
        district,
        year,
        all,
        check_dependencies,
        state,
        wait,
        work,
        wait_for_worker,
        **options,
    ):
        if all == bool(objects):
            raise CommandError("Name the sync objects to resync, or pass --all (not both).")
        found = District.objects.select_related("state").filter(code=district).first()
        if found is None:
            raise CommandError(f"No district with code {district!r}.")
        try:
            level = ResyncRequest.Level.STATE if state else ResyncRequest.Level.DISTRICT
            checked = actions.check_resync(
                found, year, None if all else objects, check_dependencies, level=level
            )
        except ResyncError as e:
            raise CommandError(str(e)) from None
        request = actions.do_request_resync(checked)
        self.stdout.write(
            f"Resync request {request.pk}: district {found.code}, {checked.year}, "
            f"{len(checked.plan.order)} object(s) in {len(checked.plan.layers)} layer(s)."
        )
        if not (wait or work):
            return
        if work:
            worker = django_rq.get_worker(settings.RQ_QUEUE)
        shown, warned, checked_at = -1, False, 0.0
        while True:
            if not work and time.monotonic() - checked_at >= WORKER_CHECK_SECONDS:
                checked_at = time.monotonic()
                if listening_workers(settings.RQ_QUEUE):
                    warned = False
                elif not wait_for_worker:
                    raise CommandError(
                        self.no_worker(request) + " Or pass --wait-for-worker to keep waiting."
                    )
                elif not warned:
                    warned = True
                    self.stderr.write(self.no_worker(request) + " Waiting for one (--wait-for-worker).")
            if work:
                worker.work(burst=True, logging_level="WARNING")
            request.refresh_from_db()
            steps = DISBatchHistory.objects.filter(request=request)
            count = steps.filter(status__in=FINISHED).count()
            if count != shown:
                shown = count
                self.stdout.write(f"  {count}/{steps.count()} steps finished")
            if request.status not in ResyncRequest.ACTIVE:  # finished, or cancelled meanwhile
                break
            if not work:
                recover_stale_steps()
                time.sleep(1)
        self.print_table(request)
        bad = DISBatchHistory.objects.filter(request=request, status__in=[StepStatus.RED, StepStatus.FAILED])
        if bad.exists():
            raise CommandError(
                f"Resync {request.pk} finished {request.outcome}: {bad.count()} step(s) red or failed."
            )

    def no_worker(self, request: ResyncRequest) -> str:
        # Without a worker the steps stay queued and --wait would print "0/N" forever.
        return (
            f"No worker is listening on queue {settings.RQ_QUEUE!r}: request {request.pk} stays queued "
            f"until one starts. Start one with `python manage.py rqworker {settings.RQ_QUEUE}`, "
            "or run the request in this process with --work."
        )

    def print_table(self, request: ResyncRequest) -> None:
        rows = (
            DISBatchHistory.objects.filter(request=request)
            .select_related("sync_object")
            .order_by("layer", "id")
        )
        self.stdout.write(f"{'Object':<30} {'Processed':>10} {'Errors':>8}  Status")
        for s in rows:
            self.stdout.write(
                f"{s.sync_object.name:<30} {s.processed:>10,} {s.errors:>8,}  {s.status.capitalize()}"
            )
        self.stdout.write(f"Overall: {request.outcome.capitalize()}")
