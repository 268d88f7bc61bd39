import json

from django.core.management.base import BaseCommand, CommandError

from resync.models import SyncObject
from resync.planner import PlanError


class Command(BaseCommand):
    help = "Show the order a resync of the given sync objects (or --all) would run in."

    def add_arguments(self, parser):
        parser.add_argument("objects", nargs="*", help="Sync object names (any case).")
        parser.add_argument("--all", action="store_true", help="Full resync: every enabled object.")
        parser.add_argument("--check-dependencies", action="store_true", help="Add every parent.")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print a JSON array in run order."
        )

    def handle(self, *args, objects, all, check_dependencies, as_json, **options):
        if all == bool(objects):
            raise CommandError("Name the sync objects to resync, or pass --all (not both).")
        try:
            plan = SyncObject.plan(None if all else objects, check_dependencies)
        except PlanError as e:
            raise CommandError(str(e)) from None
        if as_json:
            self.stdout.write(json.dumps(list(plan.order)))
            return
        for i, layer in enumerate(plan.layers, 1):
            self.stdout.write(f"{i:>2}. " + ", ".join(layer))
        if plan.added:
            self.stdout.write("Added by Check Dependencies: " + ", ".join(plan.added))
