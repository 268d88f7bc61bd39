from django.core.management.base import BaseCommand

from worker.worker import recover


class Command(BaseCommand):
    help = (
        "Re-queue resync steps and verification runs whose worker died (fail those that died too "
        "often), enqueue again those whose RQ job was lost, advance running requests with nothing "
        "queued or running and start waiting requests whose district and year run nothing."
    )

    def handle(self, *args, **options):
        steps, runs, requests = recover()
        self.stdout.write(
            f"Recovered {len(steps)} step(s), {len(runs)} verification run(s) and {len(requests)} request(s)."
        )
