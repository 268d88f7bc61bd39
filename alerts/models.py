from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db import models, transaction
from django.dispatch import Signal
from django.utils import timezone

from core import events

# Sent with `alerts` (one notify call's) once they are committed: notify mails and posts them.
alerts_created = Signal()


class AlertQuerySet(models.QuerySet):
    def unread(self) -> AlertQuerySet:
        return self.filter(read_at__isnull=True)

    def mark_read(self) -> int:
        """Mark these read; their owners' header counters follow (after commit)."""
        return self._marked(self.unread(), timezone.now())

    def mark_unread(self) -> int:
        """Mark these unread again, as a mail client does: to come back to them."""
        return self._marked(self.filter(read_at__isnull=False), None)

    def _marked(self, rows: AlertQuerySet, read_at) -> int:
        users = set(rows.values_list("user_id", flat=True))
        count = rows.update(read_at=read_at)
        for user_id in users:
            unread = ProcessAlert.objects.filter(user_id=user_id).unread().count()
            events.send([events.user_group(user_id)], {"type": "alert.count", "unread": unread})
        return count

    def notify(self, users: Iterable, **fields) -> list[ProcessAlert]:
        """Store one alert per user and push each their new unread count after commit."""
        return self.notify_all([ProcessAlert(user=u, **fields) for u in users])

    def notify_all(self, alerts: list[ProcessAlert]) -> list[ProcessAlert]:
        """Store the alerts (unsaved) and push each its user's new unread count after
        commit: one INSERT, and one count for each user however many alerts they got."""
        alerts = ProcessAlert.objects.bulk_create(alerts)
        users = {alert.user_id for alert in alerts}
        unread = dict(
            ProcessAlert.objects.filter(user_id__in=users)
            .unread()
            .values("user_id")
            .annotate(n=models.Count("pk"))
            .values_list("user_id", "n")
        )
        events.send_all(
            [
                (
                    [events.user_group(alert.user_id)],
                    {
                        "type": "alert.new",
                        "alert": alert.pk,
                        "name": alert.name,
                        "unread": unread.get(alert.user_id, 0),
                    },
                )
                for alert in alerts
            ]
        )
        if alerts:
            transaction.on_commit(lambda: alerts_created.send(sender=ProcessAlert, alerts=alerts))
        return alerts


class AlertName(models.TextChoices):
    """Every Process Alert StateSync sends, by the name its inbox shows (and filters on)."""

    STATE_RESYNC_REQUESTED = "State Resync Requested"  # tool: the state asked a district
    RESYNC_FINISHED = "Resync Finished"  # runner: a request's last layer ended
    RESYNC_CANCELLED = "Resync Cancelled"  # tool: someone else withdrew a waiting request
    SCHEDULED_RESYNC_REFUSED = "Scheduled Resync Refused"  # schedules: an occurrence's check refused it
    VERIFICATION_FINISHED = "Verification Finished"  # verification: a run ended
    # yearswitch: the new year's first resync (a label of its own: the derived one drops the hyphens)
    START_OF_YEAR_NEEDED = "Start-of-Year Resync Needed", "Start-of-Year Resync Needed"


class ProcessAlert(models.Model):
    """A message in a user's Process Alerts inbox."""

    VERTICAL_INTEROPERABILITY = "Vertical Interoperability"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="process_alerts"
    )
    name = models.CharField(max_length=100, choices=AlertName.choices)
    category = models.CharField(max_length=100)
    process = models.CharField(max_length=100, default="Resync State Data")
    message = models.CharField(max_length=500)
    link = models.CharField(max_length=300, blank=True)
    district = models.ForeignKey(
        "resync.District", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    request = models.ForeignKey(
        "resync.ResyncRequest", null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at"], name="alert_inbox")]

    def __str__(self) -> str:
        return f"{self.name} for {self.user.username}"
