import json
import sys

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from audit.doors import CommandDoor
from core.errors import REFUSALS
from core.parsers import whole_number_arg
from loads.actions import check_load, do_load, wire_rows
from loads.files import FileError, format_for, opened, read


class Command(CommandDoor, BaseCommand):
    help = (
        "Load one sync object's records of a district from a CSV or NDJSON file (- for standard input). "
        "Atomic: one bad row and nothing is written, unless --skip-invalid."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="A .csv, .ndjson or .jsonl file, or - for standard input.")
        parser.add_argument("--district", required=True, help="District code.")
        parser.add_argument("--object", required=True, help="Sync object name, as Enrollment.")
        parser.add_argument(
            "--year",
            type=whole_number_arg,
            help="School year of a year-scoped object (default: scoped year).",
        )
        parser.add_argument("--format", choices=["csv", "ndjson"], help="Default: from the file's extension.")
        parser.add_argument(
            "--snapshot",
            action="store_true",
            help="The file is the whole object: delete records it does not hold.",
        )
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="Load the valid rows; write the refused ones to --report.",
        )
        parser.add_argument(
            "--report", help="Where --skip-invalid writes refused rows (default: beside FILE)."
        )
        parser.add_argument(
            "--user",
            help="Load as this user: checked with their rights (district data W) and recorded as "
            "loaded_by. Without it the operator loads, unchecked.",
        )

    def handle(
        self, *args, file, district, object, year, format, snapshot, skip_invalid, report, user, **options
    ):
        loader = None
        if user is not None:
            loader = User.objects.filter(username=user).first()
            if loader is None:
                raise CommandError(f"No user named {user!r}.")
        try:
            fmt = format_for(file, format)
            checked = check_load(district, object, year, loader)
        except (FileError, *REFUSALS) as e:
            raise CommandError(str(e)) from None
        if skip_invalid and report is None:
            if file == "-":
                raise CommandError("Reading standard input with --skip-invalid needs --report PATH.")
            report = f"{file}.rejected.ndjson"
        tty = self.stdout.isatty()
        try:
            with opened(file) as stream:
                rows = wire_rows(checked, read(stream, fmt), fmt)
                if skip_invalid:
                    with open(report, "w", encoding="utf-8") as out:
                        result = do_load(
                            checked, rows, snapshot, True, self._reporter(out), self._progress(tty)
                        )
                else:
                    result = do_load(checked, rows, snapshot, False, on_progress=self._progress(tty))
        except (FileError, OSError) as e:
            raise CommandError(str(e)) from None
        if tty:
            sys.stdout.write("\n")
        for problem in result.problems:
            self.stdout.write(str(problem))
        if result.problem_count > len(result.problems):
            self.stdout.write(f"and {result.problem_count - len(result.problems)} more")
        self.stdout.write(
            f"read {result.read}, inserted {result.inserted}, updated {result.updated}, "
            f"unchanged {result.unchanged}, deleted {result.deleted}, rejected {result.rejected}"
        )
        if result.kept:
            self.stdout.write(result.kept)
        if skip_invalid:
            self.stdout.write(f"Refused rows and their reasons: {report}")
        if not result.written:
            raise CommandError(
                f"Refused: {result.problem_count} problem(s) in {result.rejected} row(s); nothing was written."
            )

    @staticmethod
    def _reporter(out):
        def write(line, row, problems):
            reasons = [{"field": p.field, "message": p.message} for p in problems]
            out.write(json.dumps({"line": line, "problems": reasons, "row": row}, default=str) + "\n")

        return write

    @staticmethod
    def _progress(tty: bool):
        if not tty:
            return None

        def show(read: int) -> None:
            sys.stdout.write(f"\r{read:,} rows read")
            sys.stdout.flush()

        return show
