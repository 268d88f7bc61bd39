import sys
import time

from django.core.management.base import BaseCommand

from resync import demo


class Command(BaseCommand):
    help = "Generate a demo state: districts, schools and their SIS records, with planted failures."

    def add_arguments(self, parser):
        parser.add_argument("--size", choices=list(demo.SIZES), default="small")
        parser.add_argument("--seed", type=int, default=2027)

    def handle(self, *args, size, seed, **options):
        count, students = demo.SIZES[size]
        _state, districts = demo.build_state(size, seed)
        start, done = time.monotonic(), 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            rate = done / max(time.monotonic() - start, 1e-6)
            sys.stdout.write(f"\r  {done:>10,} records  {rate:>9,.0f}/s")
            sys.stdout.flush()

        total_errors = 0
        for d in districts:
            self.stdout.write(f"District {d.code} {d.name}: {students:,} students")
            expected = demo.load_district(
                d, students, seed, progress=progress if self.stdout.isatty() else None
            )
            total_errors += sum(expected.errors.values())
            if self.stdout.isatty():
                sys.stdout.write("\n")
            self.stdout.write(
                f"  {sum(expected.processed.values()):,} records, "
                f"{sum(expected.errors.values()):,} planted to fail"
            )
        self.stdout.write(self.style.SUCCESS(f"Demo state ready: {count} districts, size {size}."))
