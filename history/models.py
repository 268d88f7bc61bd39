from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from django.db import connections, models

from core import spreadsheet, timefmt
from resync import status
from resync.models import DistrictRecord, SyncField, school_year_name
from resync.rules import Reason


class StepStatus(models.TextChoices):
    PENDING = "pending", "Waiting for its parents"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    GREEN = "green", "Green"
    YELLOW = "yellow", "Yellow"
    RED = "red", "Red"
    FAILED = "failed", "Failed"


FINISHED = (StepStatus.GREEN, StepStatus.YELLOW, StepStatus.RED, StepStatus.FAILED)


class HistoryQuerySet(models.QuerySet):
    def visible_to(self, user) -> HistoryQuerySet:
        """Rows of the districts `user` may see; a district user never sees state requests."""
        from resync import rights

        return rights.visible(user, self)

    def unfinished(self) -> HistoryQuerySet:
        """Steps not finished, or of a request not finished: deleting one would wedge
        the request (and every later one of its district and year) or change the
        outcome it is about to conclude."""
        return self.filter(~models.Q(status__in=FINISHED) | ~models.Q(request__status="finished"))

    def add_pending(self, rows: list[tuple[int, int, int, int, int]]) -> None:
        """Store new steps, pending, one per (request id, district id, school year, sync
        object id, layer), every other column its field's default.

        On PostgreSQL one INSERT of five arrays: a state request of 100 districts stores
        4,900 steps, and bulk_create spent 0.6 s of the request's 2.2 s turning 78,000
        values into SQL one by one (issue 16). The defaults come from the fields, so a
        column added to the model is filled as bulk_create would fill it."""
        if not rows:
            return
        given = ["request_id", "district_id", "school_year", "sync_object_id", "layer"]
        connection = connections[self.db]
        if connection.vendor != "postgresql":
            self.bulk_create(self.model(**dict(zip(given, row, strict=True))) for row in rows)
            return
        rest = [f for f in self.model._meta.concrete_fields if not f.primary_key and f.attname not in given]
        quote = connection.ops.quote_name
        columns = ", ".join(
            quote(self.model._meta.get_field(a).column) for a in given + [f.attname for f in rest]
        )
        sql = (
            f"INSERT INTO {quote(self.model._meta.db_table)} ({columns}) "
            f"SELECT t.*, {', '.join(['%s'] * len(rest))} "
            f"FROM unnest({', '.join(['%s::integer[]'] * len(given))}) AS t"
        )
        blank = self.model()  # every other field's value as a new row gets it (pre_save: auto_now too)
        defaults = [f.get_db_prep_save(f.pre_save(blank, True), connection) for f in rest]
        with connection.cursor() as cursor:
            cursor.execute(sql, [*defaults, *(list(column) for column in zip(*rows, strict=True))])

    def latest_per_object(self) -> dict[int, DISBatchHistory]:
        """{sync_object_id: its latest step} in two queries, however long the history."""
        last = self.values("sync_object").annotate(last=models.Max("id")).values_list("last", flat=True)
        return {s.sync_object_id: s for s in DISBatchHistory.objects.filter(pk__in=list(last))}


class DISBatchHistory(models.Model):
    """One object's step of one resync request: the product's DISBatchHistory.

    Kept forever; the tool shows the latest row per object, this keeps all.
    """

    request = models.ForeignKey("resync.ResyncRequest", on_delete=models.CASCADE, related_name="steps")
    # Copied from the request so "the latest step per object" is one indexed query.
    district = models.ForeignKey("resync.District", on_delete=models.CASCADE, related_name="+")
    school_year = models.PositiveSmallIntegerField()
    sync_object = models.ForeignKey("resync.SyncObject", on_delete=models.PROTECT, related_name="+")
    layer = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=8, choices=StepStatus.choices, default=StepStatus.PENDING)
    processed = models.PositiveIntegerField(default=0, help_text="Records attempted.")
    errors = models.PositiveIntegerField(default=0, help_text="Records that did not reach the state.")
    started_at = models.DateTimeField(null=True, blank=True, help_text="Last Resync.")
    ended_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When it was last queued: recovery enqueues it again if its job is lost.",
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=100, blank=True, help_text="host:pid of the worker running it.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    message = models.TextField(blank=True, help_text="Why the step failed, when it did.")

    objects = HistoryQuerySet.as_manager()

    class Meta:
        db_table = "DISBatchHistory"
        verbose_name = "DIS batch history"
        verbose_name_plural = "DIS batch history"
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["district", "school_year", "sync_object", "-id"], name="batch_latest_per_object"
            ),
            # Recovery looks for queued and running steps among every step ever run.
            models.Index(
                fields=["status"],
                name="batch_unfinished",
                condition=models.Q(status__in=[StepStatus.QUEUED, StepStatus.RUNNING]),
            ),
        ]

    def __str__(self) -> str:
        # The step's own district (not its request's): a list that joins it names each row.
        asked = timefmt.when(self.request.created_at, self.district)
        return f"{self.sync_object.name} of {self.district} for {school_year_name(self.school_year)}, asked {asked}"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def colour(self) -> str:
        if self.status == StepStatus.FAILED:
            return status.RED
        return status.colour(self.processed, self.errors, self.finished)

    @property
    def sent(self) -> int:
        """Records that reached the state."""
        return self.processed - self.errors


def label_fields() -> dict[int, tuple[str, ...]]:
    """{sync object id: its label fields in schema order} (SyncField.label), in one query."""
    out: dict[int, list[str]] = {}
    for obj, name in (
        SyncField.objects.filter(label=True)
        .order_by("position", "name")
        .values_list("sync_object_id", "name")
    ):
        out.setdefault(obj, []).append(name)
    return {k: tuple(v) for k, v in out.items()}


class ErrorLogQuerySet(models.QuerySet):
    CSV_HEADER = ["created_at", "district", "object", "record_id", "reason", "message", "request", "step"]

    def with_record_payload(self) -> ErrorLogQuerySet:
        """Each row with its district record's payload (`record_payload`, None once the
        record is gone): one indexed subquery in the list's own query, no query per row,
        for ErrorLog.label."""
        payload = DistrictRecord.objects.filter(
            district=models.OuterRef("district"),
            sync_object=models.OuterRef("sync_object"),
            record_id=models.OuterRef("record_id"),
        ).values("payload")[:1]
        return self.annotate(record_payload=models.Subquery(payload))

    def as_csv(self) -> Iterator[str]:
        """The rows as CSV text, line by line: an export streams in flat memory at any size."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.CSV_HEADER)
        rows = self.values_list(
            "created_at",
            "district__time_zone",
            "district__code",
            "sync_object__name",
            "record_id",
            "reason",
            "message",
            "step__request_id",
            "step_id",
        )
        for row in rows.iterator(chunk_size=2000):
            # A message quotes the district's data: text cells are made safe to open (CSV injection).
            # Its time as the page shows it: the district's zone, named (core.timefmt).
            writer.writerow([timefmt.when(row[0], row[1]), *map(spreadsheet.cell, row[2:])])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()


class ErrorLog(models.Model):
    """One record that did not reach the state, with why."""

    step = models.ForeignKey(DISBatchHistory, on_delete=models.CASCADE, related_name="error_log")
    district = models.ForeignKey("resync.District", on_delete=models.CASCADE, related_name="+")
    sync_object = models.ForeignKey("resync.SyncObject", on_delete=models.PROTECT, related_name="+")
    record_id = models.BigIntegerField()
    reason = models.CharField(max_length=20, choices=Reason.choices)
    message = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ErrorLogQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["district", "sync_object", "reason"], name="errorlog_filter")]

    def __str__(self) -> str:
        # The record's own (district-side) id and why, no other row read: a step's delete
        # confirmation lists each of its errors by this, and must not read two rows each.
        return f"{self.get_reason_display()}: record {self.record_id}"

    @staticmethod
    def label(payload: dict | None, fields: tuple[str, ...]) -> str:
        """A record as a person knows it: its `fields` (the schema's label fields) in
        `payload` (the district record's), "Ada Lovelace 1234567"; "" without either."""
        payload = payload if isinstance(payload, dict) else {}
        return " ".join(str(payload[f]) for f in fields if payload.get(f) not in (None, ""))
