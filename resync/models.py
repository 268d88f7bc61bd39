from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models, router, transaction
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from core import timefmt

from . import planner
from .catalog import ALIASES


class SyncObjectQuerySet(models.QuerySet):
    def enabled(self) -> SyncObjectQuerySet:
        return self.filter(enabled=True)

    def parents_map(self) -> dict[str, tuple[str, ...]]:
        """{name: immediate parent names} for every object, in two queries."""
        names = dict(self.model.objects.values_list("id", "name"))
        out: dict[str, list[str]] = {n: [] for n in names.values()}
        links = SyncObjectParent.objects.order_by("position").values_list("child_id", "parent_id")
        for child_id, parent_id in links:
            out[names[child_id]].append(names[parent_id])
        return {k: tuple(v) for k, v in out.items()}

    def for_year(self, district_year: int, year: int) -> SyncObjectQuerySet:
        """Objects offered for `year`: all in the scoped year; for a previous/next
        year only objects tied to a school year and configured to sync for it."""
        qs = self.enabled()
        if year != district_year:
            qs = qs.filter(year_scoped=True, syncs_other_years=True)
        return qs

    def offered(self, district: District, year: int) -> SyncObjectQuerySet:
        """What `district` may resync for `year`: enabled, of its state's edition, offered that year."""
        edition = district.state.edition
        mine = models.Q(editions="")
        if edition:
            mine |= models.Q(editions__regex=rf"(^|,){edition}(,|$)")
        return self.for_year(district.scope_year, year).filter(mine)


class SyncObject(models.Model):
    """One row of the article's Campus Object Hierarchies table."""

    name = models.CharField(max_length=64, unique=True)
    parents = models.ManyToManyField(
        "self", symmetrical=False, through="SyncObjectParent", related_name="children"
    )
    year_scoped = models.BooleanField(help_text="Records belong to one school year.")
    syncs_other_years = models.BooleanField(
        default=True, help_text="Configured to sync for the previous/next school year too."
    )
    editions = models.CharField(
        max_length=64, blank=True, help_text="State editions, comma-separated; blank means all."
    )
    enabled = models.BooleanField(default=True, help_text="Shown and synced in this deployment.")
    note = models.TextField(blank=True, help_text="Why the catalog reads the article this way.")
    allows_extra = models.BooleanField(
        default=False, help_text="Accept payload fields the schema does not name (refused by default)."
    )

    objects = SyncObjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        permissions = [("resync_object", "May resync this sync object")]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def plan(cls, selection: list[str] | None = None, check_dependencies: bool = False) -> planner.Plan:
        """Plan a resync against the catalog as this deployment has it."""
        parents = cls.objects.parents_map()
        enabled = set(cls.objects.enabled().values_list("name", flat=True))
        names = None if selection is None else planner.resolve(parents, selection, ALIASES)
        return planner.plan(parents, enabled, names, check_dependencies=check_dependencies)

    def do_set_allows_extra(self, allows_extra: bool, by=None) -> None:
        """Open or close the schema to unknown fields, recorded like a field change."""
        if allows_extra == self.allows_extra:
            return
        with transaction.atomic():
            SyncFieldChange.objects.create(
                sync_object=self,
                field="",
                action=SyncFieldChange.Action.CHANGED,
                changes={"allows_extra": [self.allows_extra, allows_extra]},
                changed_by=by,
            )
            self.allows_extra = allows_extra
            self.save(update_fields=["allows_extra"])


# The wire form's own keys (resync.schemas): a payload field may not take their names.
RESERVED_FIELD_NAMES = frozenset({"record_id", "school_year", "parents", "state_excluded"})


class SyncField(models.Model):
    """One payload field of a sync object's schema (issue 13, "Field schemas").

    Every save and delete through the ORM writes a SyncFieldChange (who, when, what):
    the admin, a shell or a command all pass here, so none goes unrecorded. Pass
    `by=` the user making the change. Data migrations use historical models and
    record nothing: shipping the schema is not a change to it.
    """

    class Type(models.TextChoices):
        STRING = "string", "String"
        INTEGER = "integer", "Integer"
        NUMBER = "number", "Number"
        BOOLEAN = "boolean", "Boolean"
        DATE = "date", "Date (YYYY-MM-DD)"
        DATETIME = "datetime", "Date and time (ISO 8601)"
        CODE = "code", "Code from a list"

    class Owner(models.TextChoices):
        # The article's Synchronization Field Settings: who may change a field's value.
        DISTRICT = "district", "District-owned"
        STATE = "state", "State-locked"

    sync_object = models.ForeignKey(SyncObject, on_delete=models.CASCADE, related_name="fields")
    name = models.CharField(max_length=64)
    type = models.CharField(max_length=8, choices=Type.choices, default=Type.STRING)
    required = models.BooleanField(default=False)
    max_length = models.PositiveIntegerField(null=True, blank=True, help_text="For strings and codes.")
    codes = models.JSONField(
        default=list, blank=True, help_text='The allowed codes, for type code: ["09", "10"].'
    )
    description = models.CharField(max_length=200, blank=True)
    owner = models.CharField(
        max_length=8,
        choices=Owner.choices,
        default=Owner.DISTRICT,
        help_text="State-locked: a district load may not change the value once the state holds it.",
    )
    position = models.PositiveSmallIntegerField(default=0)
    # A person knows a record by these (a student's name and SSID, a school's name), not by
    # its id: the Error Log shows them beside the record's id (issue 14, item 8).
    label = models.BooleanField(
        default=False, help_text="Names the record to a person: shown beside its id in the Error Log."
    )

    TRACKED = ("name", "type", "required", "max_length", "codes", "description", "owner", "position", "label")

    class Meta:
        ordering = ["sync_object", "position", "name"]
        constraints = [models.UniqueConstraint(fields=["sync_object", "name"], name="sync_field_unique")]

    def __str__(self) -> str:
        return f"{self.sync_object.name}.{self.name}"

    def save(self, *args, by=None, **kwargs) -> None:
        with transaction.atomic():
            old = None
            if self.pk:
                old = SyncField.objects.filter(pk=self.pk).values(*self.TRACKED).first()
            super().save(*args, **kwargs)
            new = self._values()
            if old is None:
                action, changes = SyncFieldChange.Action.ADDED, {k: [None, v] for k, v in new.items()}
            else:
                action = SyncFieldChange.Action.CHANGED
                changes = {k: [old[k], new[k]] for k in self.TRACKED if old[k] != new[k]}
            if changes:
                SyncFieldChange.objects.create(
                    sync_object_id=self.sync_object_id,
                    field=self.name,
                    action=action,
                    changes=changes,
                    changed_by=by,
                )

    save.alters_data = True

    def delete(self, *args, by=None, **kwargs):
        with transaction.atomic():
            SyncFieldChange.objects.create(
                sync_object_id=self.sync_object_id,
                field=self.name,
                action=SyncFieldChange.Action.REMOVED,
                changes={k: [v, None] for k, v in self._values().items()},
                changed_by=by,
            )
            return super().delete(*args, **kwargs)

    delete.alters_data = True

    def clean(self) -> None:
        errors = {}
        if self.name in RESERVED_FIELD_NAMES:
            errors["name"] = f"{self.name} is a key of every record, not a payload field."
        elif self.name and not self.name.isidentifier():
            errors["name"] = "A field name is letters, digits and underscores, not starting with a digit."
        if self.type == self.Type.CODE:
            if not self.codes or not all(isinstance(c, str) and c for c in self.codes):
                errors["codes"] = 'A code field lists its codes as non-empty strings: ["09", "10"].'
        elif self.codes:
            errors["codes"] = "Only a field of type code lists codes."
        if self.max_length is not None and self.type not in (self.Type.STRING, self.Type.CODE):
            errors["max_length"] = "Only strings and codes have a maximum length."
        if errors:
            raise ValidationError(errors)

    def _values(self) -> dict:
        return {f: getattr(self, f) for f in self.TRACKED}


class SyncFieldChange(models.Model):
    """One change to a schema: who, when, which field, and each attribute's [old, new]."""

    class Action(models.TextChoices):
        ADDED = "added", "Added"
        CHANGED = "changed", "Changed"
        REMOVED = "removed", "Removed"

    sync_object = models.ForeignKey(SyncObject, on_delete=models.CASCADE, related_name="field_changes")
    # A name, not a key: the record outlives a removed field. Blank for the object's allows_extra.
    field = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=8, choices=Action.choices)
    changes = models.JSONField(help_text="{attribute: [old, new]}")
    changed_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        what = ", ".join(f"{k}: {old!r} → {new!r}" for k, (old, new) in self.changes.items())
        return f"{self.sync_object.name}.{self.field or '(object)'} {self.action}: {what}"


class SyncObjectParent(models.Model):
    child = models.ForeignKey(SyncObject, on_delete=models.CASCADE, related_name="parent_links")
    parent = models.ForeignKey(SyncObject, on_delete=models.CASCADE, related_name="child_links")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        unique_together = [("child", "parent")]
        ordering = ["position"]

    def __str__(self) -> str:
        return f"{self.parent} -> {self.child}"


class State(models.Model):
    """The state agency running a State (or Regional) Edition; it owns many districts."""

    code = models.CharField(max_length=8, unique=True)
    name = models.CharField(max_length=100)
    edition = models.CharField(
        max_length=8, blank=True, help_text="Edition code (KY, SD, ME, BIE…) that picks edition-only objects."
    )

    def __str__(self) -> str:
        return self.name


class District(models.Model):
    state = models.ForeignKey(State, on_delete=models.PROTECT, related_name="districts")
    code = models.CharField(max_length=16, unique=True, help_text="State district number.")
    name = models.CharField(max_length=100)
    scope_year = models.PositiveSmallIntegerField(
        help_text="Scoped school year, by its ending year: 2027 is 2026-27."
    )
    sync_previous_year = models.BooleanField(default=False)
    sync_next_year = models.BooleanField(default=False)
    # Every time a person reads of this district (pages, live rows, CSV) is in this zone,
    # named (core.timefmt): one zone for the district's administrators wherever they sit.
    time_zone = models.CharField(
        max_length=64,
        default=timefmt.default_zone,
        validators=[timefmt.validate_zone],
        help_text="The IANA time zone its times are shown in, such as America/Chicago.",
    )
    # Set by the year switch only (yearswitch.actions.do_year_switch): the state checks
    # against them that the end-of-year and start-of-year full resyncs happened.
    year_switched_at = models.DateTimeField(
        null=True, blank=True, help_text="When the scoped year was last switched to the next one."
    )
    end_of_year_request = models.ForeignKey(
        "ResyncRequest",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The full resync of the previous year that allowed the last switch.",
    )
    # A deleted record leaves no changed_at behind, yet the state still holds it until
    # the next resync: the end-of-year rule counts this as a data change too. Stamped
    # by DistrictRecord's delete() and its QuerySet's, in the deleting transaction.
    records_deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="When records of this district were last deleted."
    )

    class Meta:
        ordering = ["code"]
        permissions = [
            ("resync_district", "Batch resync R: view and run batch resyncs of this district"),
            ("switch_year", "Year switch: move a district's scoped year to the next school year"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def years(self) -> list[int]:
        """The school years this district may resync, current first."""
        years = [self.scope_year]
        if self.sync_previous_year:
            years.append(self.scope_year - 1)
        if self.sync_next_year:
            years.append(self.scope_year + 1)
        return years


class School(models.Model):
    district = models.ForeignKey(District, on_delete=models.CASCADE, related_name="schools")
    number = models.CharField(max_length=16)
    name = models.CharField(max_length=100)

    class Meta:
        unique_together = [("district", "number")]

    def __str__(self) -> str:
        return self.name


def school_year_name(year: int) -> str:
    """A school year as people write it: 2027 is "2026-2027"."""
    return f"{year - 1}-{year}"


class RecordFields(models.Model):
    """What both sides store of one record of one sync object."""

    school_year = models.PositiveSmallIntegerField(null=True, blank=True)
    record_id = models.BigIntegerField(help_text="The record's district-side id.")
    parent_ids = models.JSONField(default=dict, blank=True, help_text="{parent object: parent record id}")
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        abstract = True


class DistrictRecordQuerySet(models.QuerySet):
    def delete(self):
        """Delete the rows and stamp their districts' records_deleted_at, in one transaction.

        One UPDATE of the districts whose rows match, whatever their number; deleting
        a whole District (CASCADE) does not pass here, and needs no stamp.
        """
        with transaction.atomic(using=self.db, savepoint=False):
            District.objects.using(self.db).filter(pk__in=self.values("district_id")).update(
                records_deleted_at=timezone.now()
            )
            return super().delete()

    delete.alters_data = True
    delete.queryset_only = True


class DistrictRecord(RecordFields):
    """A record of the district's SIS (district side, alias `default`).

    Deleting one through the ORM (the instance or a QuerySet) stamps its district's
    records_deleted_at; raw SQL does not, so nothing but the benchmark's loader uses it.
    """

    district = models.ForeignKey(District, on_delete=models.CASCADE, related_name="records")
    sync_object = models.ForeignKey(SyncObject, on_delete=models.PROTECT, related_name="+")
    # State-excluded enrollments, grade levels and calendars may never reach the state.
    state_excluded = models.BooleanField(default=False)
    changed_at = models.DateTimeField(auto_now=True)

    objects = DistrictRecordQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["district", "sync_object", "record_id"], name="district_record_unique"
            )
        ]
        indexes = [
            models.Index(
                fields=["district", "sync_object", "school_year", "id"], name="district_record_scan"
            ),
            # The year switch asks for a district's last data change.
            models.Index(fields=["district", "changed_at"], name="district_record_changed"),
        ]

    def __str__(self) -> str:
        # Its object's name only when already read: deleting a district lists every record
        # by this, and must not read a row for each of them.
        loaded = self._state.fields_cache.get("sync_object")
        return f"{loaded.name} {self.record_id}" if loaded else f"Record {self.record_id}"

    def delete(self, using=None, keep_parents=False):
        using = using or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using, savepoint=False):
            District.objects.using(using).filter(pk=self.district_id).update(
                records_deleted_at=timezone.now()
            )
            return super().delete(using=using, keep_parents=keep_parents)

    delete.alters_data = True


class StateRecord(RecordFields):
    """The state's copy of a district record (alias `state`: no foreign keys cross over)."""

    district_code = models.CharField(max_length=16)
    sync_object = models.CharField(max_length=64)
    step = models.BigIntegerField(help_text="The DISBatchHistory row that last wrote this record.")
    synced_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["district_code", "sync_object", "record_id"], name="state_record_unique"
            )
        ]
        indexes = [
            models.Index(fields=["district_code", "sync_object", "school_year"], name="state_record_scope"),
            # state-records/?changed_since=: a pull of what changed reads only the rows written
            # since, instead of walking every id to find them (statecopy.api.KeysetPage).
            models.Index(fields=["synced_at"], name="state_record_synced"),
        ]

    def __str__(self) -> str:
        return f"{self.district_code}/{self.sync_object}:{self.record_id}"


def record_scope(
    district: District, obj: SyncObject, year: int, records: list[int] | None = None
) -> tuple[models.QuerySet[DistrictRecord], models.QuerySet[StateRecord]]:
    """(district records, state records) of one object of a district and school year:
    what a resync step moves and what a verification compares.

    A year-scoped object's records are those of `year`; the others' are all the
    district's. Selective Sync narrows both sides to its `records`, so its step
    removes at the state only those of them the district no longer has.
    """
    district_side = DistrictRecord.objects.filter(district=district, sync_object=obj)
    state_side = StateRecord.objects.filter(district_code=district.code, sync_object=obj.name)
    if obj.year_scoped:
        district_side = district_side.filter(school_year=year)
        state_side = state_side.filter(school_year=year)
    if records is not None:
        district_side = district_side.filter(record_id__in=records)
        state_side = state_side.filter(record_id__in=records)
    return district_side, state_side


def objects_holding(district: District, objects: list[SyncObject], year: int) -> set[int]:
    """The ids of those `objects` with a record of the district and year on either side:
    record_scope's rule, asked of a layer's objects at once. Two statements (each object
    an EXISTS, which stops at its first row) instead of two per object."""
    mine = DistrictRecord.objects.filter(district=district, sync_object=models.OuterRef("pk"))
    held = set(
        SyncObject.objects.filter(pk__in=[o.pk for o in objects])
        .filter(
            models.Q(year_scoped=False) & models.Exists(mine)
            | models.Q(year_scoped=True) & models.Exists(mine.filter(school_year=year))
        )
        .values_list("pk", flat=True)
    )
    rest = [o for o in objects if o.pk not in held]
    if not rest:
        return held
    connection = transaction.get_connection(router.db_for_read(StateRecord))
    table = connection.ops.quote_name(StateRecord._meta.db_table)
    asks, params = [], []
    for o in rest:
        year_is = " AND school_year = %s" if o.year_scoped else ""
        asks.append(
            f"SELECT %s WHERE EXISTS (SELECT 1 FROM {table} WHERE district_code = %s AND sync_object = %s{year_is})"
        )
        params += [o.pk, district.code, o.name] + ([year] if o.year_scoped else [])
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(asks), params)
        return held | {row[0] for row in cursor.fetchall()}


class ResyncRequest(models.Model):
    """One resync asked for one district and school year."""

    class Level(models.TextChoices):
        DISTRICT = "district", "District"
        STATE = "state", "State"

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting for another request of this district and year"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        # Withdrawn while it waited (tool.actions.do_cancel): none of its steps ran.
        CANCELLED = "cancelled", "Cancelled before it started"

    # Still to run or running: what holds a district and year, and what may repeat a send.
    ACTIVE = (Status.WAITING, Status.RUNNING)

    district = models.ForeignKey(District, on_delete=models.PROTECT, related_name="requests")
    school_year = models.PositiveSmallIntegerField()
    objects_asked = models.JSONField(
        null=True, blank=True, help_text="The objects selected; empty for a full resync."
    )
    check_dependencies = models.BooleanField(default=False)
    records = models.JSONField(
        null=True,
        blank=True,
        help_text="Selective Sync: the record ids of its one object to resync; empty for whole objects.",
    )
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.DISTRICT)
    requested_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.WAITING)
    current_layer = models.SmallIntegerField(default=-1, help_text="The layer now running; -1 before start.")
    one_job = models.BooleanField(
        default=False,
        help_text="Small enough to run whole in one RQ job, its steps one after another "
        "(runner.lifecycle.run_request); set when it starts.",
    )
    job = models.CharField(
        max_length=40,
        blank=True,
        help_text="The RQ job that runs a one-job request: its own (request-<id>), or one of a state "
        "request's small districts run side by side (requests-<first id>, runner.lifecycle.run_requests).",
    )
    outcome = models.CharField(max_length=8, blank=True, help_text="Worst step colour once finished.")
    # Written when the request finishes, for the end-of-year rule: it must not change
    # when someone later deletes the failed step's DISBatchHistory row (history D).
    steps_failed = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Steps that failed, once finished."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True, help_text="When it was cancelled, waiting.")
    # Sent by a schedule (issue 15), not by a person at a door: named by string, as
    # schedules sits above resync in the layers.
    schedule = models.ForeignKey(
        "schedules.Schedule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="requests",
        help_text="The schedule that sent it; empty when a person did.",
    )

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["district", "school_year", "status"], name="request_active")]
        permissions = [
            ("view_state_resync", "State resync R: view state resync requests and every district's results"),
            ("send_state_resync", "State resync W: send a state resync request"),
        ]

    def __str__(self) -> str:
        # People know a request by its district, year and time, not by its ids.
        asked = timefmt.when(self.created_at, self.district)
        return f"Resync of {self.district} for {school_year_name(self.school_year)}" + (
            f", asked {asked}" if asked else ""
        )

    @property
    def full(self) -> bool:
        return self.objects_asked is None


# Object permissions with direct foreign keys (django-guardian): rights are
# checked on every page and job, so they get real joins, not generic ones.
class DistrictUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(District, on_delete=models.CASCADE)


class DistrictGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(District, on_delete=models.CASCADE)


class SyncObjectUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(SyncObject, on_delete=models.CASCADE)


class SyncObjectGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(SyncObject, on_delete=models.CASCADE)
