import json

from django.core.management.base import BaseCommand, CommandError

from core.errors import ResyncError
from core.parsers import whole_number_arg
from resync.models import District, SyncObject
from resync.planner import Plan, PlanError
from tool import actions


class Command(BaseCommand):
    help = (
        "Show the order a resync runs in. With --district, what that district's resync would "
        "really run: its state's edition, the objects offered for the school year, the year's "
        "rules, the same check as sending it. With --catalog, the whole catalog's order: every "
        "enabled object of every edition, whatever a district is offered."
    )

    def add_arguments(self, parser):
        parser.add_argument("objects", nargs="*", help="Sync object names (any case).")
        parser.add_argument("--all", action="store_true", help="Full resync: every object offered.")
        parser.add_argument("--check-dependencies", action="store_true", help="Add every parent.")
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--district", metavar="CODE", help="Plan what this district's resync would run.")
        where.add_argument(
            "--catalog",
            action="store_true",
            help="Plan against the whole catalog: every enabled object, no edition or year applied.",
        )
        parser.add_argument(
            "--year",
            type=whole_number_arg,
            help="With --district: the school year (ending year); its scoped year by default.",
        )
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print a JSON array in run order."
        )

    def handle(self, *args, objects, all, check_dependencies, district, catalog, year, as_json, **options):
        if all == bool(objects):
            raise CommandError("Name the sync objects to resync, or pass --all (not both).")
        selection = None if all else objects
        if catalog:
            if year is not None:
                raise CommandError("--year plans a district's year: give it with --district.")
            plan = self.catalog_plan(selection, check_dependencies)
        else:
            plan = self.district_plan(district, year, selection, check_dependencies)
        if as_json:
            self.stdout.write(json.dumps(list(plan.order)))
            return
        for i, layer in enumerate(plan.layers, 1):
            self.stdout.write(f"{i:>2}. " + ", ".join(layer))
        if plan.added:
            self.stdout.write("Added by Check Dependencies: " + ", ".join(plan.added))

    def catalog_plan(self, selection: list[str] | None, check_dependencies: bool) -> Plan:
        try:
            return SyncObject.plan(selection, check_dependencies)
        except PlanError as e:
            raise CommandError(str(e)) from None

    def district_plan(
        self, code: str, year: int | None, selection: list[str] | None, check_dependencies: bool
    ) -> Plan:
        found = District.objects.select_related("state").filter(code=code).first()
        if found is None:
            raise CommandError(f"No district with code {code!r}.")
        try:
            # user=None: the operator's command, as resync_run; no rights apply.
            return actions.check_resync(found, year, selection, check_dependencies).plan
        except ResyncError as e:
            raise CommandError(str(e)) from None
