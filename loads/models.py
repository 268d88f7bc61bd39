from __future__ import annotations

from django.conf import settings
from django.db import models

from resync.models import District, SyncObject


class Load(models.Model):
    """One load of district records (a file through import_records): who loaded what,
    and what it did. Also the home of the district data W right."""

    district = models.ForeignKey(District, on_delete=models.CASCADE, related_name="loads")
    sync_object = models.ForeignKey(SyncObject, on_delete=models.PROTECT, related_name="+")
    school_year = models.PositiveSmallIntegerField(null=True, blank=True)
    snapshot = models.BooleanField(default=False)
    loaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    loaded_at = models.DateTimeField(auto_now_add=True)
    read = models.PositiveIntegerField(default=0)
    inserted = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-id"]
        default_permissions = ("view",)
        permissions = [("load_district_data", "District data W: load a district's records")]

    def __str__(self) -> str:
        return f"Load {self.pk} of {self.sync_object_id} into {self.district_id}"
