import sys

from django.core.management.base import BaseCommand, CommandError

from audit.doors import CommandDoor
from core import timefmt
from core.errors import ResyncError
from resync.models import District, school_year_name
from yearswitch import actions


class Command(CommandDoor, BaseCommand):
    help = (
        "Switch a district's scoped school year to the next one. Refused unless a full resync "
        "of the current year started after the district's last data change (the end-of-year rule)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--district", required=True, help="District code.")
        parser.add_argument("--check", action="store_true", help="Only say whether the switch may go ahead.")
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not ask for confirmation on a terminal.",
        )

    def handle(self, *args, district, check, interactive=True, **options):
        found = District.objects.filter(code=district).first()
        if found is None:
            raise CommandError(f"No district with code {district!r}.")
        try:
            switch = actions.check_year_switch(found)
            if check:
                end = switch.end_of_year
                self.stdout.write(
                    f"District {found.code} may switch to {switch.from_year + 1}: "
                    f"full resync of {school_year_name(end.school_year)} finished "
                    f"{timefmt.when(end.finished_at, found)}."
                )
                return
            if interactive and sys.stdin.isatty() and not self.confirmed(switch):
                raise CommandError("Not switched.")
            switched = actions.do_year_switch(switch)
        except ResyncError as e:
            raise CommandError(str(e)) from None
        self.stdout.write(
            f"District {switched.code} now syncs {switched.scope_year}; its users were reminded "
            f"to run the start-of-year full resync."
        )

    def confirmed(self, switch: actions.YearSwitch) -> bool:
        # Irreversible, as the admin's confirmation page says: ask as `flush` does.
        d, year = switch.district, switch.from_year + 1
        answer = input(
            f"District {d.code} {d.name} will sync {year} from now on; this cannot be undone, and the "
            f"start-of-year full resync of {year} becomes mandatory. Type 'yes' to switch: "
        )
        return answer.strip().lower() == "yes"
