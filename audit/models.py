"""One row per change anyone made: written by audit.trail.record, never edited or deleted."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from audit import doors
from resync.models import District, ResyncRequest


class AuditEntry(models.Model):
    at = models.DateTimeField(default=timezone.now, db_index=True)
    # The name is kept apart: the entry outlives the user (and the district) it names.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True, help_text="Blank: the system itself.")
    door = models.CharField(max_length=8, choices=doors.CHOICES)
    district = models.ForeignKey(District, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    district_code = models.CharField(max_length=16, blank=True)
    # A state request's entries are the state's: a district user never sees them
    # (resync.rights.visible_q), as they never see the request.
    level = models.CharField(
        max_length=8, choices=ResyncRequest.Level.choices, default=ResyncRequest.Level.DISTRICT
    )
    action = models.CharField(max_length=40, db_index=True)
    object_type = models.CharField(max_length=100, blank=True, help_text='"app.model" of the object.')
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit report"
        indexes = [models.Index(fields=["district", "at"])]

    def __str__(self) -> str:
        who = self.username or "the system"
        return f"{who} {self.action} {self.object_repr}".strip()

    def save(self, *args, **kwargs) -> None:
        # The trail is appended to, never rewritten.
        if not self._state.adding:
            raise ValueError("An audit entry is never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("An audit entry is never deleted.")
