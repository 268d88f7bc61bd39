"""Fire due schedules: one tick, or --loop to run RQ's cron scheduler beside the workers."""

from __future__ import annotations

import django_rq
from django.conf import settings
from django.core.management.base import BaseCommand

from schedules import actions, jobs


class Command(BaseCommand):
    help = (
        "Fire the schedules due now (one tick). With --loop, run RQ's cron scheduler, which "
        "enqueues that tick every minute for the workers; several may run, each occurrence fires once."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--loop", action="store_true", help="Run RQ's cron scheduler until stopped.")

    def handle(self, *args, loop: bool = False, **options) -> None:
        if loop:
            jobs.scheduler(django_rq.get_connection(settings.RQ_QUEUE)).start()
            return
        for fired in actions.tick():
            self.stdout.write(f"{fired.schedule.name}: {fired.message}")
