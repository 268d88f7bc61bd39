from django.core.management.base import BaseCommand

from resync.actions import recover


class Command(BaseCommand):
    help = (
        "Re-queue resync steps and verification runs whose worker died (fail those that died too "
        "often) and enqueue again those whose RQ job was lost."
    )

    def handle(self, *args, **options):
        steps, runs = recover()
        self.stdout.write(f"Recovered {len(steps)} step(s) and {len(runs)} verification run(s).")
