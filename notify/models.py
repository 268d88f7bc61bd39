from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from alerts.models import AlertName


class EmailSubscription(models.Model):
    """One alert name a user wants by email too (besides their Process Alerts inbox)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100, choices=AlertName.choices)

    class Meta:
        verbose_name = "email notification"
        verbose_name_plural = "my notifications"
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="one_subscription_per_name")]

    def __str__(self) -> str:
        return f"{self.name} by email to {self.user.username}"


def new_secret() -> str:
    return secrets.token_hex(32)


class Webhook(models.Model):
    """Where a district's (or, with no district, the state's) alerts are POSTed, signed."""

    district = models.ForeignKey(
        "resync.District",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Empty: the state's webhook, told of every district.",
    )
    url = models.URLField(max_length=500, help_text="An http:// or https:// address receiving POSTs.")
    # Shown once, when made; never again (README, Notifications).
    secret = models.CharField(max_length=100, default=new_secret, editable=False)
    names = models.JSONField(default=list, help_text="The alert names posted here.")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.district.code if self.district_id else 'State'} → {self.url}"


class Delivery(models.Model):
    """One attempt to POST one event to a webhook."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=100)
    key = models.CharField(max_length=32, help_text="The same for every attempt of one event.")
    attempt = models.PositiveSmallIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["webhook", "key"], name="delivery_attempts")]

    def __str__(self) -> str:
        return f"{self.event} to {self.webhook_id}, attempt {self.attempt}"

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
