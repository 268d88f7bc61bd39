"""The series the history charts draw, read from DISBatchHistory and ResyncRequest.

Whole-object steps only: a Selective Sync step of two records has its own history
(the Selective Sync page) and would read as a 50% error rate. A district user never
sees a state request's steps (resync.rights.visible), as on the tool page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC

from django.db.models import CharField, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from history.models import FINISHED, DISBatchHistory
from resync import rights
from resync.models import District, ResyncRequest, SyncObject

from . import charts

# An object's two charts sit in a row of every object's (about 50 rows): fewer points
# than the durations' chart keep a page of 150 resyncs of every object near 0.5 MB.
OBJECT_POINTS = 30


class Moments(Sequence[str]):
    """Start times, formatted only when read: a chart reads two labels a bucket, and
    formatting (or parsing) each of 30,000 steps' times cost more than the rest of the page."""

    def __init__(self) -> None:
        self.moments: list = []

    def append(self, moment) -> None:
        self.moments.append(moment)

    def __len__(self) -> int:
        return len(self.moments)

    def __getitem__(self, i):  # noqa: ANN001 (an int or a slice, as Sequence has it)
        if isinstance(i, slice):
            return [_label(m) for m in self.moments[i]]
        return _label(self.moments[i])


@dataclass
class Series:
    """One object's finished steps, oldest first."""

    name: str
    labels: Moments = field(default_factory=Moments)
    processed: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)  # errors per 100 processed

    def add(self, started, processed: int, errors: int) -> None:
        self.labels.append(started)
        self.processed.append(processed)
        self.rates.append(100 * errors / processed if processed else 0)

    def charts(self) -> dict:
        return {
            "name": self.name,
            "count": len(self.labels),
            "rate": charts.line_chart(
                self.rates, self.labels, f"{self.name}: error rate", percent, OBJECT_POINTS
            ),
            "processed": charts.line_chart(
                self.processed, self.labels, f"{self.name}: records processed", most=OBJECT_POINTS
            ),
            "last_rate": percent(self.rates[-1]),
            "last_processed": f"{self.processed[-1]:,.0f}",
        }


def percent(value: float) -> str:
    return f"{value:.2g}%" if 0 < value < 10 else f"{value:.0f}%"


def seconds(value: float) -> str:
    return f"{value:.0f} s"


def minutes(value: float) -> str:
    return f"{value:.1f} min"


def _label(moment) -> str:
    """A start time as the page shows it; `moment` may be the database's text of it."""
    if isinstance(moment, str):
        moment = parse_datetime(moment)
        if moment is not None and timezone.is_naive(moment):
            moment = timezone.make_aware(moment, UTC)  # SQLite keeps UTC without an offset
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}" if moment else "not started"


def steps(user, districts: QuerySet[District], year: int | None) -> QuerySet:
    qs = rights.visible(user, DISBatchHistory.objects.filter(district__in=districts))
    qs = qs.filter(status__in=FINISHED, request__records__isnull=True)
    return qs.filter(school_year=year) if year else qs


def requests(user, districts: QuerySet[District], year: int | None) -> QuerySet[ResyncRequest]:
    qs = rights.visible(user, ResyncRequest.objects.filter(district__in=districts), level="level")
    qs = qs.filter(
        status=ResyncRequest.Status.FINISHED,
        records__isnull=True,
        started_at__isnull=False,
        finished_at__isnull=False,
    )
    return qs.filter(school_year=year) if year else qs


def years(user, districts: QuerySet[District], offered: set[int]) -> list[int]:
    """The school years to pick from, latest first: those the districts may resync now
    and every year their history holds (after a year switch, the years before it)."""
    found = requests(user, districts, None).order_by().values_list("school_year", flat=True).distinct()
    return sorted(offered | set(found), reverse=True)


def object_charts(user, districts: QuerySet[District], year: int | None) -> list[dict]:
    """Per object, in catalog order: its error rate and processed count over its resyncs
    (two queries, however long the history)."""
    order = list(SyncObject.objects.enabled().values_list("name", flat=True))
    found: dict[str, Series] = {}
    rows = (
        steps(user, districts, year)
        .order_by("started_at", "id")
        # As text: turning 30,000 values into datetimes took most of the page's time,
        # and a chart reads two labels a bucket (Moments parses those).
        .annotate(at=Cast("started_at", CharField()))
        .values_list("sync_object__name", "at", "processed", "errors")
    )
    for name, started, processed, errors in rows.iterator(chunk_size=5000):
        found.setdefault(name, Series(name)).add(started, processed, errors)
    return [found[n].charts() for n in order if n in found]


def duration_charts(user, districts: QuerySet[District], year: int | None) -> list[dict]:
    """How long resyncs took (start to finish), full resyncs apart from the others: a
    full resync of 49 objects and one of two objects are not one series."""
    full = Series("Full resyncs")
    partial = Series("Resyncs of some objects")
    rows = requests(user, districts, year).order_by("finished_at", "id")
    for asked, started, ended in rows.values_list("objects_asked", "started_at", "finished_at").iterator():
        (full if asked is None else partial).labels.append(started)
        (full if asked is None else partial).processed.append((ended - started).total_seconds())
    return [_duration(s) for s in (full, partial) if s.labels]


def _duration(s: Series) -> dict:
    # In minutes once any took two, so the axis tops on a round number of the unit shown.
    if max(s.processed) >= 120:
        values, fmt = [v / 60 for v in s.processed], minutes
    else:
        values, fmt = s.processed, seconds
    return {
        "name": s.name,
        "count": len(s.labels),
        "chart": charts.line_chart(values, s.labels, f"{s.name}: duration", fmt),
        "last": fmt(values[-1]),
    }
