"""Schedules: check_* validates and authorises (raising ResyncError or RightsError,
changing nothing), do_* writes, and `tick` fires what is due. The admin, the API and
the run_schedules command all call these.

Exactly once: every scheduler (RQ's cron scheduler may run on several hosts) runs
`tick` every minute. A tick claims an occurrence with a conditional UPDATE
(`next_run_at` moves on only where it still holds the occurrence claimed), inside
the transaction that stores the occurrence's requests: a second tick racing it
waits on the row, then finds `next_run_at` moved and updates nothing. A tick that
fails rolls its claim back with its requests, and the next tick sends it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from croniter import CroniterError, croniter
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from alerts.models import AlertName, ProcessAlert
from audit import doors
from core import timefmt
from core.errors import REFUSALS, ResyncError, RightsError
from resync import rights
from resync.models import District, ResyncRequest
from tool import actions as tool

from .models import Schedule, next_after

# An occurrence a tick reaches later than this passed while no scheduler (or no worker
# free to run its tick) was up: it is missed, and the schedule's policy says what then.
MISSED_AFTER = dt.timedelta(minutes=5)

SHORTHANDS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def may_schedule_all(user: User | None) -> bool:
    """State administrators (state R and W) schedule any district or a whole state;
    `None` is an operator's command."""
    return user is None or (rights.is_state(user) and rights.may_send_state(user))


def visible(user: User) -> QuerySet[Schedule]:
    """The schedules `user` may see: every one for a state user; else their districts'
    district-level ones (never a state's, nor a state-wide one)."""
    qs = Schedule.objects.select_related("district", "state", "created_by")
    if rights.is_state(user):
        return qs
    if not rights.active(user):
        return qs.none()
    return qs.filter(Q(district__in=rights.districts(user)), level=ResyncRequest.Level.DISTRICT)


def targets(schedule: Schedule) -> list[District]:
    if schedule.district_id:
        return [schedule.district]
    return list(District.objects.filter(state_id=schedule.state_id).select_related("state"))


def check_cron(cron: str, zone: str) -> None:
    cron = (cron or "").strip()
    fields = cron.split()
    if not (len(fields) == 5 or cron in SHORTHANDS) or not croniter.is_valid(cron):
        raise ResyncError(
            f"{cron!r} is not a cron expression: write five fields, minute hour day month weekday "
            "(0 2 * * * is every day at 02:00), or @daily, @weekly, @monthly, @yearly.",
            "cron",
        )
    try:
        next_after(cron, zone, timezone.now())
    except CroniterError:
        raise ResyncError(f"{cron!r} never happens (no such date): it would never run.", "cron") from None


def check_manage(user: User | None, schedule: Schedule) -> None:
    """May `user` change, pause, resume or delete `schedule`? The doors look it up among
    visible(user) first (404 for others); this refuses the rest by name."""
    if may_schedule_all(user):
        return
    if schedule.district_id is None or schedule.level != ResyncRequest.Level.DISTRICT:
        raise RightsError("Only state administrators (state resync R and W) manage state schedules.")
    if not settings.SCHEDULES_FOR_DISTRICTS:
        raise RightsError(
            "Only state administrators schedule resyncs here: the state does not let districts "
            "schedule their own (SCHEDULES_FOR_DISTRICTS)."
        )
    rights.check_request(user, schedule.district, ResyncRequest.Level.DISTRICT)


def check_schedule(schedule: Schedule, user: User | None) -> Schedule:
    """Validate and authorise a new or changed (unsaved) schedule; returns it with its
    level and next run set, unsaved. What it would send is checked as a request sent
    now would be (tool.actions.check_resync), for each district it targets."""
    if not (schedule.name or "").strip():
        raise ResyncError("A schedule needs a name.", "name")
    if bool(schedule.district_id) == bool(schedule.state_id):
        raise ResyncError(
            "Choose either one district or a state (every district of it), not both.", "district"
        )
    try:
        timefmt.validate_zone(schedule.time_zone)
    except ValidationError as e:
        raise ResyncError(e.messages[0], "time_zone") from None
    schedule.cron = (schedule.cron or "").strip()
    check_cron(schedule.cron, schedule.time_zone)
    if (schedule.window_start is None) != (schedule.window_end is None):
        raise ResyncError(
            "An off-peak window needs both a start and an end time (or neither).", "window_start"
        )
    if schedule.window_start is not None and schedule.window_start == schedule.window_end:
        raise ResyncError(
            "The off-peak window starts and ends at the same time: it would be empty.", "window_end"
        )
    if schedule.missed not in Schedule.Missed.values:
        raise ResyncError(f"Missed occurrences are run_once or skip, not {schedule.missed!r}.", "missed")
    if schedule.objects_asked is not None and not schedule.objects_asked:
        raise ResyncError("Name at least one object, or none at all for a full resync.", "objects")
    if not may_schedule_all(user):
        if schedule.state_id:
            raise RightsError(
                "Only state administrators (state resync R and W) schedule every district of a state."
            )
        check_manage(user, schedule)
    # It runs as its creator: a state administrator changing a district's schedule
    # leaves it the district's (the district still sees it, and what it sends).
    runner = schedule.created_by if schedule.pk else user
    schedule.level = tool.level_for(runner)
    found = targets(schedule)
    if not found:
        raise ResyncError(f"{schedule.state} has no districts to resync.", "state")
    for district in found:
        # Objects the district is not offered, or its runner holds no tool right for,
        # are refused now, by name, not at two in the morning.
        tool.check_resync(
            district, None, schedule.objects_asked, schedule.check_dependencies, runner, schedule.level
        )
    schedule.next_run_at = next_after(schedule.cron, schedule.time_zone, timezone.now())
    return schedule


def do_save(schedule: Schedule, user: User | None) -> Schedule:
    """Store a schedule check_schedule allowed (its creator is the first to save it)."""
    if schedule.pk is None:
        schedule.created_by = user
    schedule.save()
    return schedule


def do_pause(schedule: Schedule, paused: bool) -> Schedule:
    """Pause, or resume: a resumed schedule runs at its next occurrence from now, not at
    the ones that passed while it was paused (those were not missed, they were refused)."""
    schedule.paused = paused
    fields = ["paused"]
    if not paused:
        schedule.next_run_at = next_after(schedule.cron, schedule.time_zone, timezone.now())
        fields.append("next_run_at")
    schedule.save(update_fields=fields)
    return schedule


@dataclass(frozen=True)
class Fired:
    schedule: Schedule
    requests: list[ResyncRequest]
    message: str


def tick(now: dt.datetime | None = None) -> list[Fired]:
    """Fire every schedule due at `now`: one scheduler's minute."""
    now = now or timezone.now()
    due = Schedule.objects.filter(paused=False, next_run_at__lte=now).values_list("pk", "next_run_at")
    out = []
    for pk, at in list(due):
        fired = fire(pk, at, now)
        if fired is not None:
            out.append(fired)
    return out


def fire(pk: int, at: dt.datetime, now: dt.datetime) -> Fired | None:
    """Claim the occurrence `at` of schedule `pk` and send it; None when another
    scheduler claimed it first, or it waits for its off-peak window."""
    schedule = Schedule.objects.select_related("district", "state", "created_by").get(pk=pk)
    late = now - at > MISSED_AFTER
    skip = late and schedule.missed == Schedule.Missed.SKIP
    message = ""
    if not schedule.in_window(now):
        if schedule.missed == Schedule.Missed.RUN_ONCE:
            return None  # still due: the first tick inside the window sends it
        skip, message = (
            True,
            f"Skipped the run due {timefmt.when(at, schedule.time_zone)}: outside the off-peak window.",
        )
    following = next_after(schedule.cron, schedule.time_zone, now)
    with transaction.atomic():
        claimed = Schedule.objects.filter(pk=pk, next_run_at=at, paused=False).update(
            next_run_at=following, last_run_at=now
        )
        if claimed != 1:
            return None
        sent: list[ResyncRequest] = []
        if skip:
            message = message or (
                f"Skipped the run due {timefmt.when(at, schedule.time_zone)}: missed while no scheduler ran."
            )
        else:
            with doors.entered(doors.SCHEDULE):  # the audit trail names the schedule's door
                message = send(schedule, sent, at)
        Schedule.objects.filter(pk=pk).update(last_message=message)
    return Fired(schedule, sent, message)


def send(schedule: Schedule, sent: list[ResyncRequest], at: dt.datetime | None = None) -> str:
    """Send the schedule's request to each district it targets, as its creator, marked
    with it; a district refused (its creator lost a right, a year not configured)
    does not stop the others, and says why, in the last message and an alert to the
    schedule's owner."""
    refused = []
    for district in targets(schedule):
        try:
            checked = tool.check_resync(
                district,
                None,
                schedule.objects_asked,
                schedule.check_dependencies,
                schedule.created_by,
                schedule.level,
            )
            request = tool.do_request_resync(checked)
        except REFUSALS as e:
            refused.append(f"{district.code}: {e}")
            continue
        # Marked in the same transaction: a worker never sees it unmarked.
        ResyncRequest.objects.filter(pk=request.pk).update(schedule=schedule)
        request.schedule = schedule
        sent.append(request)
    parts = [f"Sent {len(sent)} request(s)."]
    if refused:
        parts.append("Refused: " + "; ".join(refused))
        alert_refused(schedule, refused, at or timezone.now())
    return " ".join(parts)


# ProcessAlert.message's length: a state-wide schedule may be refused at every district.
MESSAGE_MAX = 500


def refused_message(name: str, when: str, refused: list[str], most: int = MESSAGE_MAX) -> str:
    """The alert's words: the schedule, its occurrence and each refusal, cut to `most`."""
    text = f"Schedule {name!r}, due {when}: refused for {'; '.join(refused)}"
    return text if len(text) + 1 <= most else text[: most - 1] + "…"


def alert_refused(schedule: Schedule, refused: list[str], at: dt.datetime) -> None:
    """Tell the schedule's owner an occurrence was refused, and why. A state schedule's
    alert is the state's (no district): a district's webhooks never hear of it, as they
    never hear of the state's requests. A schedule an operator's command made has no
    owner to tell; its last message says why."""
    owner = schedule.created_by
    if owner is None:
        return
    state = schedule.district_id is None or schedule.level == ResyncRequest.Level.STATE
    ProcessAlert.objects.notify(
        [owner],
        name=AlertName.SCHEDULED_RESYNC_REFUSED,
        category=ProcessAlert.VERTICAL_INTEROPERABILITY,
        message=refused_message(schedule.name, timefmt.when(at, schedule.time_zone), refused),
        # Checked when shown (alerts.links): the schedule's page, to those it is visible to.
        link=reverse("admin:schedules_schedule_change", args=[schedule.pk]),
        district=None if state else schedule.district,
    )
