from django.core.management.base import BaseCommand

from resync.actions import recover_stale_steps


class Command(BaseCommand):
    help = "Re-queue resync steps whose worker died; fail those that died too often."

    def handle(self, *args, **options):
        touched = recover_stale_steps()
        self.stdout.write(f"Recovered {len(touched)} step(s).")
