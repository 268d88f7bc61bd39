import sys
import time

from django.core.management.base import BaseCommand
from django.db import connection, transaction

from resync import demo
from resync.models import District, DistrictRecord, ResyncRequest


def install_found() -> bool:
    """Does this database hold a StateSync install with districts already? (Migrated,
    and a district added, by the demo or by hand.)"""
    if District._meta.db_table not in connection.introspection.table_names():
        return False
    return District.objects.exists()


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


class Command(BaseCommand):
    help = (
        "Generate a demo state: districts, schools and their SIS records, with planted failures. "
        "Keeps an existing install's districts, records and history as they are."
    )

    def add_arguments(self, parser):
        parser.add_argument("--size", choices=list(demo.SIZES), default="small")
        parser.add_argument("--seed", type=int, default=2027)
        parser.add_argument(
            "--installed",
            action="store_true",
            help="Only print 'yes' if this install already has districts, else 'no' (for bin/demo).",
        )

    def handle(self, *args, size, seed, installed, **options):
        if installed:
            self.stdout.write("yes" if install_found() else "no")
            return
        if District.objects.exists():
            # Loading again would replace the records under the old history, and reset a
            # switched school year to the demo's: a re-run keeps what is there.
            self.stdout.write(
                f"keeping the existing data: {_n(District.objects.count(), 'district')}, "
                f"{_n(DistrictRecord.objects.count(), 'record')}, "
                f"{_n(ResyncRequest.objects.count(), 'resync')}"
            )
            return
        # All or nothing: a load cut short (Ctrl-C) must not leave districts that a
        # re-run would keep as "the existing data".
        with transaction.atomic():
            self.load(size, seed)

    def load(self, size: str, seed: int) -> None:
        count, students = demo.SIZES[size]
        _state, districts = demo.build_state(size, seed)
        start, done = time.monotonic(), 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            rate = done / max(time.monotonic() - start, 1e-6)
            sys.stdout.write(f"\r  {done:>10,} records  {rate:>9,.0f}/s")
            sys.stdout.flush()

        records = planted = 0
        for d in districts:
            self.stdout.write(f"District {d.code} {d.name}: {students:,} students")
            expected = demo.load_district(
                d, students, seed, progress=progress if self.stdout.isatty() else None
            )
            if self.stdout.isatty():
                sys.stdout.write("\n")
            records += sum(expected.processed.values())
            planted += sum(expected.errors.values())
            self.stdout.write(
                f"  {sum(expected.processed.values()):,} records, "
                f"{sum(expected.errors.values()):,} planted to fail"
            )
        # Last, as one line: bin/demo shows it as its phase.
        self.stdout.write(
            f"loaded demo data: {_n(count, 'district')}, {_n(records, 'record')} ({planted:,} planted to fail)"
        )
