from __future__ import annotations

import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.utils.deconstruct import deconstructible

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
        return f"Load of {self.sync_object.name} into {self.district}"


@deconstructible
class UploadStorage(FileSystemStorage):
    """Where uploaded files are kept: settings.UPLOAD_DIR, read when used (not once at
    import). The web process writes them and a worker reads them, so both must see the
    same folder. Never served as media: a file is read back only through the upload's
    pages, which check the right."""

    @property
    def base_location(self) -> str:
        return str(settings.UPLOAD_DIR)

    @property
    def location(self) -> str:
        return os.path.abspath(self.base_location)


class Upload(models.Model):
    """A file a district administrator uploaded in the admin for one load: checked by a
    job (a dry run, its verdict kept), then loaded by a second job once confirmed."""

    class Status(models.TextChoices):
        CHECKING = "checking"
        CHECKED = "checked"  # may be confirmed
        LOADING = "loading"
        LOADED = "loaded"
        REFUSED = "refused"  # a problem refused the file (at the check or the load)
        FAILED = "failed"  # the job could not run it (a right withdrawn, an error)

    district = models.ForeignKey(District, on_delete=models.CASCADE, related_name="uploads")
    sync_object = models.ForeignKey(SyncObject, on_delete=models.PROTECT, related_name="+")
    school_year = models.PositiveSmallIntegerField(null=True, blank=True)
    snapshot = models.BooleanField(default=False)
    skip_invalid = models.BooleanField(default=False)
    file = models.FileField(storage=UploadStorage(), upload_to="%Y/%m/", max_length=255)
    name = models.CharField(max_length=255, help_text="The file's name as uploaded.")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.CHECKING)
    progress = models.PositiveIntegerField(default=0, help_text="Rows read by the last job.")
    verdict = models.JSONField(
        default=dict, blank=True, help_text="The check's counts, first problems and first rows."
    )
    error = models.TextField(blank=True)
    load = models.OneToOneField(Load, null=True, blank=True, on_delete=models.SET_NULL, related_name="upload")

    class Meta:
        ordering = ["-id"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"Upload {self.pk}: {self.name}"
