from __future__ import annotations

from django.db import models

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

    objects = SyncObjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def plan(cls, selection: list[str] | None = None, check_dependencies: bool = False) -> planner.Plan:
        """Plan a resync against the catalog as this deployment has it."""
        parents = cls.objects.parents_map()
        enabled = set(cls.objects.enabled().values_list("name", flat=True))
        names = None if selection is None else planner.resolve(parents, selection, ALIASES)
        return planner.plan(parents, enabled, names, check_dependencies=check_dependencies)


class SyncObjectParent(models.Model):
    child = models.ForeignKey(SyncObject, on_delete=models.CASCADE, related_name="parent_links")
    parent = models.ForeignKey(SyncObject, on_delete=models.CASCADE, related_name="child_links")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        unique_together = [("child", "parent")]
        ordering = ["position"]

    def __str__(self) -> str:
        return f"{self.parent} -> {self.child}"
