"""How far a batch resync has come: objects done, records done, time left, and its summary.

One home for the tool page, the request's admin page and the Agent Queue, computed for
many requests in a fixed number of queries (the Agent Queue shows every active one).
A Selective Sync is a request too, but it is never a batch: the tool's rows and their
estimates read batch steps only (`batch_steps`), and Selective Sync keeps its own
history (its admin list).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

from django.db.models import Max, QuerySet
from django.urls import reverse
from django.utils import timezone

from history.models import FINISHED, DISBatchHistory, StepStatus
from resync import status
from resync.models import ResyncRequest


def batch_steps(qs: QuerySet[DISBatchHistory]) -> QuerySet[DISBatchHistory]:
    """The steps of batch requests only: a Selective Sync (a request naming its records)
    resyncs a few records and must never stand for the object's result."""
    return qs.filter(request__records__isnull=True)


def error_log_url(request_id: int, sync_object_id: int | None = None) -> str:
    """The Error Log filtered to a request (and one of its objects)."""
    query = {"step__request__id__exact": request_id}
    if sync_object_id is not None:
        query["sync_object__id__exact"] = sync_object_id
    return f"{reverse('admin:history_errorlog_changelist')}?{urlencode(query)}"


@dataclass
class Progress:
    request: ResyncRequest
    total: int = 0
    done: int = 0
    records: int = 0
    errors: int = 0
    colours: dict[str, int] = field(default_factory=lambda: {"green": 0, "yellow": 0, "red": 0})
    seconds_left: float | None = None  # None: not known yet ("estimating…")

    @property
    def finished(self) -> bool:
        """Ended, one way or another (finished, or cancelled before it started)."""
        return self.request.status not in (ResyncRequest.Status.WAITING, ResyncRequest.Status.RUNNING)

    @property
    def error_log(self) -> str:
        return error_log_url(self.request.pk)

    @property
    def summary(self) -> str:
        """ "45 green, 1 yellow, 3 red: 13 errors", the colours it has."""
        parts = [f"{n} {c}" for c, n in self.colours.items() if n]
        words = ", ".join(parts) or "nothing to resync"
        return f"{words}: {self.errors} error{'' if self.errors == 1 else 's'}"

    @property
    def time_left(self) -> str:
        if self.finished:
            return ""
        if self.seconds_left is None:
            return "estimating…"
        minutes, seconds = divmod(round(self.seconds_left), 60)
        if minutes >= 60:
            return f"about {minutes // 60} h {minutes % 60} min left"
        return f"about {minutes} min {seconds} s left" if minutes else f"about {seconds} s left"

    def as_json(self) -> dict:
        return {
            "request": self.request.pk,
            "status": self.request.status,
            "total": self.total,
            "done": self.done,
            "records": self.records,
            "errors": self.errors,
            "colours": self.colours,
            "seconds_left": self.seconds_left,
            "time_left": self.time_left,
            "summary": self.summary if self.finished else "",
            "error_log": self.error_log,
        }


def of(requests: list[ResyncRequest], now: datetime | None = None) -> dict[int, Progress]:
    """{request id: its Progress}, in three queries however many requests and steps."""
    now = now or timezone.now()
    found = {r.pk: Progress(r) for r in requests}
    if not found:
        return found
    steps = list(
        DISBatchHistory.objects.filter(request_id__in=found).only(
            "request_id",
            "district_id",
            "school_year",
            "sync_object_id",
            "status",
            "processed",
            "errors",
            "started_at",
        )
    )
    running = [r for r in requests if not found[r.pk].finished]
    before = previous_durations(running) if running else {}
    for s in steps:
        p = found[s.request_id]
        p.total += 1
        p.records += s.processed
        p.errors += s.errors
        if s.status in FINISHED:
            p.done += 1
            p.colours[s.colour] += 1
    by_request: dict[int, list[DISBatchHistory]] = {}
    for s in steps:
        by_request.setdefault(s.request_id, []).append(s)
    for p in found.values():
        if not p.finished:
            p.seconds_left = estimate(p, by_request.get(p.request.pk, []), before, now)
    return found


def previous_durations(requests: list[ResyncRequest]) -> dict[tuple[int, int, int], float]:
    """{(district, year, object): seconds its latest finished batch step took} before
    these requests, from the district's own history."""
    keys = {(r.district_id, r.school_year) for r in requests}
    history = batch_steps(
        DISBatchHistory.objects.filter(
            district_id__in={d for d, _ in keys},
            school_year__in={y for _, y in keys},
            status__in=FINISHED,
            started_at__isnull=False,
            ended_at__isnull=False,
        ).exclude(request_id__in=[r.pk for r in requests])
    )
    last = history.values("district_id", "school_year", "sync_object_id").annotate(last=Max("id"))
    rows = DISBatchHistory.objects.filter(pk__in=[row["last"] for row in last]).only(
        "district_id", "school_year", "sync_object_id", "started_at", "ended_at"
    )
    return {
        (s.district_id, s.school_year, s.sync_object_id): (s.ended_at - s.started_at).total_seconds()
        for s in rows
    }


def estimate(
    p: Progress, steps: list[DISBatchHistory], before: dict[tuple[int, int, int], float], now: datetime
) -> float | None:
    """Seconds left: what the unfinished steps took last time (less what a running one has
    run already); for an object never run before, the request's running rate per object.
    None until there is something to go on. Steps are summed, as on one worker: an
    estimate errs long rather than short."""
    left, unknown = 0.0, 0
    for s in steps:
        if s.status in FINISHED:
            continue
        took = before.get((s.district_id, s.school_year, s.sync_object_id))
        if took is None:
            unknown += 1
            continue
        ran = (now - s.started_at).total_seconds() if s.status == StepStatus.RUNNING and s.started_at else 0
        left += max(took - ran, 0.0)
    if unknown:
        started = p.request.started_at
        if not p.done or started is None:
            return None
        left += (now - started).total_seconds() / p.done * unknown
    return left


def colour_label(step: DISBatchHistory | None) -> tuple[str, str]:
    """(dot colour, word) of a tool row: Never synced, Queued, Running, or its colour."""
    if step is None:
        return "none", "Never synced"
    if step.status in (StepStatus.PENDING, StepStatus.QUEUED):
        return "queued", "Queued"
    if step.status == StepStatus.FAILED:
        return status.RED, "Failed"
    return step.colour, step.colour.title() if step.finished else "Running"
