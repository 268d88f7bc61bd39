"""Resyncs that run on a schedule (issue 15): a cron expression in a named time zone.

A schedule sends ordinary requests (tool.actions.check_resync, do_request_resync),
each marked with it (ResyncRequest.schedule): the same checks, history and alerts
as a request sent by hand. schedules.actions fires them; one claim per occurrence
(a conditional UPDATE of next_run_at) makes sure only one scheduler sends it.
"""

from __future__ import annotations

import datetime as dt

from croniter import croniter
from django.db import models

from core import timefmt
from resync.models import District, ResyncRequest, State


def next_after(cron: str, zone: str, moment: dt.datetime) -> dt.datetime:
    """The first occurrence of `cron` read in `zone` strictly after `moment`, in UTC.
    croniter steps through the zone's own wall clock, so 02:00 stays 02:00 across DST;
    a time the clock skips runs at the hour after it (02:30 at 03:00 in spring)."""
    tz = timefmt.zone(zone)
    times = croniter(cron, moment.astimezone(tz))
    while True:
        found = times.get_next(dt.datetime).astimezone(dt.UTC)
        # In autumn the clock shows 01:30 twice: run at the first only (as RQ's cron does),
        # not twice in one night.
        wall = found.astimezone(tz).replace(tzinfo=None)
        if wall.replace(tzinfo=tz, fold=0).astimezone(dt.UTC) == found:
            return found


class Schedule(models.Model):
    class Missed(models.TextChoices):
        # An occurrence that passed while no scheduler ran (everything down).
        RUN_ONCE = "run_once", "Run once on start"
        SKIP = "skip", "Skip it"

    name = models.CharField(max_length=100)
    # Exactly one of the two: one district, or every district of a state.
    district = models.ForeignKey(
        District, null=True, blank=True, on_delete=models.CASCADE, related_name="schedules"
    )
    state = models.ForeignKey(
        State,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="schedules",
        help_text="Every district of this state (leave the district empty).",
    )
    objects_asked = models.JSONField(
        null=True, blank=True, help_text="The objects to resync; empty for a full resync."
    )
    check_dependencies = models.BooleanField(default=False)
    level = models.CharField(
        max_length=8, choices=ResyncRequest.Level.choices, default=ResyncRequest.Level.DISTRICT
    )
    cron = models.CharField(
        max_length=100, help_text="A cron expression: minute hour day month weekday, e.g. 0 2 * * *."
    )
    time_zone = models.CharField(
        max_length=64,
        default=timefmt.default_zone,
        validators=[timefmt.validate_zone],
        help_text="The IANA time zone the cron expression is read in, such as America/Chicago.",
    )
    window_start = models.TimeField(
        null=True, blank=True, help_text="Off-peak window start (the schedule's zone); empty for none."
    )
    window_end = models.TimeField(null=True, blank=True, help_text="Off-peak window end; may pass midnight.")
    missed = models.CharField(max_length=8, choices=Missed.choices, default=Missed.RUN_ONCE)
    paused = models.BooleanField(default=False)
    next_run_at = models.DateTimeField(help_text="The next occurrence, once claimed moved to the one after.")
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_message = models.TextField(blank=True, help_text="What the last occurrence did or why not.")
    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["next_run_at", "id"]
        indexes = [models.Index(fields=["paused", "next_run_at"], name="schedule_due")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(district__isnull=True) ^ models.Q(state__isnull=True),
                name="schedule_one_target",
                violation_error_message="Choose either one district or a state (every district of it), not both.",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def target(self) -> str:
        return str(self.district) if self.district_id else f"every district of {self.state}"

    @property
    def full(self) -> bool:
        return self.objects_asked is None

    def in_window(self, moment: dt.datetime) -> bool:
        """Is `moment` inside the off-peak window (read in the schedule's zone)? Always
        without a window; a window from 22:00 to 05:00 passes midnight."""
        if self.window_start is None or self.window_end is None:
            return True
        t = moment.astimezone(timefmt.zone(self.time_zone)).time()
        if self.window_start <= self.window_end:
            return self.window_start <= t < self.window_end
        return t >= self.window_start or t < self.window_end
