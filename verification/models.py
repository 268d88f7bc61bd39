"""The Verification Summary (compare the district and state stores), and the two proxy
models that give Selective Sync's history and the year-switch overview their admin pages.

Differences are kept one row per record so an administrator can drill down;
the counts on DISVerificationResult are always exact, even when the rows kept
are capped for a district whose whole object is missing at the state.
"""

from __future__ import annotations

import operator
from functools import reduce

from django.conf import settings
from django.db import models
from django.db.models import Case, F, IntegerField, Sum, When
from django.db.models.functions import Coalesce

from core import timefmt
from resync import rights
from resync.models import District, ResyncRequest, school_year_name
from resync.rules import Reason


class VerificationSetting(models.Model):
    """The state's switches for the Verification Summary: a single row."""

    district_initiated = models.BooleanField(
        default=True, help_text="District users may run verifications of their own districts."
    )
    changed_at = models.DateTimeField(auto_now=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        default_permissions = ("view", "change")
        verbose_name = "verification setting"

    def __str__(self) -> str:
        return "District-initiated verification " + ("on" if self.district_initiated else "off")

    @classmethod
    def current(cls) -> VerificationSetting:
        setting, _ = cls.objects.get_or_create(pk=1)
        return setting


# The counts of a result that a resync would fix; not-allowed records are not among
# them. Summed per run by RunQuerySet.with_totals, per result by differences_count.
DIFFERING = ("only_district", "only_state", "different")


class RunQuerySet(models.QuerySet):
    def visible_to(self, user) -> RunQuerySet:
        """The runs `user` may know of: their districts', and for a district user never
        the state's (a run a state user asked for), as for requests (rights.visible_q)."""
        return self.filter(rights.visible_q(user, level="level"))

    def with_resync_shown(self, user) -> RunQuerySet:
        """Annotate `resync_shown`: the run's resync request when `user` may see that
        request, else None. A district's run whose differences a state user resynced
        must not name the state's request to the district."""
        if rights.is_state(user):
            return self.annotate(resync_shown=F("resync_request_id"))
        district = ResyncRequest.Level.DISTRICT
        return self.annotate(
            resync_shown=Case(When(resync_request__level=district, then=F("resync_request_id")), default=None)
        )

    def with_totals(self) -> RunQuerySet:
        """Annotate each run's `differing` (records a resync would fix) and `refused`
        (records not allowed to sync) summed over its results."""
        differing = reduce(operator.add, (F(f"results__{name}") for name in DIFFERING))
        return self.annotate(
            differing=Coalesce(Sum(differing), 0, output_field=IntegerField()),
            refused=Coalesce(Sum("results__not_allowed"), 0),
        )


class VerificationRun(models.Model):
    """One verification of one district and school year over a set of objects."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"

    district = models.ForeignKey(District, on_delete=models.CASCADE, related_name="verifications")
    # A state user's run is the state's, as their resync requests are (tool.actions.level_for):
    # its results, differences, one-click resync and pushes are never shown to the district.
    level = models.CharField(
        max_length=8,
        choices=ResyncRequest.Level.choices,
        default=ResyncRequest.Level.DISTRICT,
        help_text="State: asked for by the state; the district never sees it.",
    )
    school_year = models.PositiveSmallIntegerField()
    sync_objects = models.JSONField(help_text="The sync objects compared, parents first.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    objects_done = models.PositiveSmallIntegerField(default=0)
    records_compared = models.PositiveBigIntegerField(default=0)
    message = models.TextField(blank=True, help_text="Why the run failed, when it did.")
    created_at = models.DateTimeField(auto_now_add=True)
    # Recovery, as for resync steps: a run whose worker died is queued again up
    # to runner.jobs.MAX_ATTEMPTS times, one whose RQ job was lost is enqueued again.
    queued_at = models.DateTimeField(null=True, blank=True, help_text="When it was last queued.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times a worker took it.")
    worker = models.CharField(max_length=100, blank=True, help_text="host:pid of the worker running it.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    resync_request = models.ForeignKey(
        ResyncRequest,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The partial resync last sent from this run's differences.",
    )

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        default_permissions = ("view", "delete")
        permissions = [("run_verification", "Verification Summary W: run a verification of a district")]
        indexes = [models.Index(fields=["district", "school_year", "-id"], name="verification_latest")]

    def __str__(self) -> str:
        # People know a run by its district, year and time, not by its ids (issue 14, item 8).
        when = timefmt.when(self.created_at, self.district)
        return f"Verification of {self.district} for {school_year_name(self.school_year)}, started {when}"

    @property
    def progress(self) -> str:
        return f"{self.objects_done}/{len(self.sync_objects)} objects, {self.records_compared} records"


class DISVerificationResult(models.Model):
    """One object's counts in one verification run."""

    run = models.ForeignKey(VerificationRun, on_delete=models.CASCADE, related_name="results")
    sync_object = models.ForeignKey("resync.SyncObject", on_delete=models.PROTECT, related_name="+")
    only_district = models.PositiveIntegerField(default=0, help_text="At the district, not at the state.")
    only_state = models.PositiveIntegerField(default=0, help_text="At the state, not at the district.")
    different = models.PositiveIntegerField(default=0, help_text="At both, payload or parent links differ.")
    matching = models.PositiveIntegerField(default=0)
    not_allowed = models.PositiveIntegerField(
        default=0, help_text="Only at the district because they may not sync: not failures."
    )
    truncated = models.BooleanField(default=False, help_text="More differences than rows kept.")

    class Meta:
        db_table = "DISVerificationResult"
        verbose_name = "DIS verification result"
        ordering = ["id"]
        default_permissions = ()  # seen with the run (Verification Summary R)
        constraints = [
            models.UniqueConstraint(fields=["run", "sync_object"], name="verification_result_unique")
        ]

    def __str__(self) -> str:
        return f"{self.sync_object.name} in {self.run}"

    @property
    def differences_count(self) -> int:
        """Differences a resync would fix; not-allowed records are not among them."""
        return sum(getattr(self, name) for name in DIFFERING)


class DISVerificationDifference(models.Model):
    """One record that differs between the district and the state."""

    class Kind(models.TextChoices):
        ONLY_DISTRICT = "only_district", "Only at the district"
        ONLY_STATE = "only_state", "Only at the state"
        DIFFERENT = "different", "In both, different"
        NOT_ALLOWED = "not_allowed", "Not allowed to sync"

    result = models.ForeignKey(DISVerificationResult, on_delete=models.CASCADE, related_name="differences")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    record_id = models.BigIntegerField()
    reason = models.CharField(
        max_length=20,
        choices=Reason.choices,
        blank=True,
        help_text="Why the last resync refused it (not-allowed), or why it is excluded.",
    )
    detail = models.CharField(max_length=200, blank=True, help_text="Which fields differ.")

    class Meta:
        db_table = "DISVerificationDifference"
        verbose_name = "DIS verification difference"
        ordering = ["id"]
        default_permissions = ()
        indexes = [models.Index(fields=["result", "kind"], name="verification_difference_kind")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.record_id}"


class SelectiveSyncQuerySet(models.QuerySet):
    def deletable(self) -> SelectiveSyncQuerySet:
        """Only finished history may be deleted: deleting a running request would orphan its steps."""
        return self.filter(status=ResyncRequest.Status.FINISHED)


class SelectiveSyncManager(models.Manager.from_queryset(SelectiveSyncQuerySet)):
    def get_queryset(self) -> SelectiveSyncQuerySet:
        # A Selective Sync is a request narrowed to records; the others are batch resyncs.
        return super().get_queryset().filter(records__isnull=False)


class SelectiveSync(ResyncRequest):
    """Selective Sync and its history: resync requests narrowed to single records.

    A proxy so the tool has its own rights: R view (the tool and its history),
    W use, D delete its history. It stays in this app, where its content type and
    permissions have always been (verification.*_selectivesync) and where its admin
    pages' URLs live; the selective app holds everything else about it.
    """

    objects = SelectiveSyncManager()

    class Meta:
        proxy = True
        verbose_name = "Selective Sync"
        verbose_name_plural = "Selective Sync"
        default_permissions = ("view", "delete")
        permissions = [("use_selectivesync", "Selective Sync W: resync single records")]


class SchoolYearSwitch(District):
    """Districts as the year switch sees them: scoped year and the two mandatory resyncs.

    It stays in this app for its admin page's URL; the yearswitch app holds the rest."""

    class Meta:
        proxy = True
        verbose_name = "school year switch"
        verbose_name_plural = "school year switch"
        default_permissions = ()
