from django.core.management.base import BaseCommand, CommandError

from audit.doors import CommandDoor
from core.errors import ResyncError
from core.parsers import whole_number_arg
from loads.actions import do_add_district, parse_school


class Command(CommandDoor, BaseCommand):
    help = "Create a district (and its state when missing) with its schools, so a newcomer needs no shell."

    def add_arguments(self, parser):
        parser.add_argument("--state", required=True, help="State code, as KY; created when missing.")
        parser.add_argument("--state-name", help="The state's name, for a new state (default: its code).")
        parser.add_argument("--edition", help="A new state's edition (default: its code).")
        parser.add_argument("--code", required=True, help="State district number, as 205.")
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--year",
            required=True,
            type=whole_number_arg,
            help="Scoped school year by its end: 2027 is 2026-27.",
        )
        parser.add_argument(
            "--school", action="append", default=[], metavar="NUMBER:NAME", help="A school (repeat for more)."
        )

    def handle(self, *args, state, state_name, edition, code, name, year, school, **options):
        try:
            schools = [parse_school(s) for s in school]
            district = do_add_district(state, code, name, year, state_name, edition, schools)
        except ResyncError as e:
            raise CommandError(str(e)) from None
        count = len(schools)
        self.stdout.write(
            f"District {district.code} {district.name} of {district.state.code}, scoped to {year}, "
            f"with {count} school{'s' if count != 1 else ''}."
        )
