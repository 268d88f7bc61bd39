import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import core.timefmt


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("resync", "0014_district_time_zone_field_label"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Schedule",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100)),
                (
                    "objects_asked",
                    models.JSONField(
                        blank=True, help_text="The objects to resync; empty for a full resync.", null=True
                    ),
                ),
                ("check_dependencies", models.BooleanField(default=False)),
                (
                    "level",
                    models.CharField(
                        choices=[("district", "District"), ("state", "State")],
                        default="district",
                        max_length=8,
                    ),
                ),
                (
                    "cron",
                    models.CharField(
                        help_text="A cron expression: minute hour day month weekday, e.g. 0 2 * * *.",
                        max_length=100,
                    ),
                ),
                (
                    "time_zone",
                    models.CharField(
                        default=core.timefmt.default_zone,
                        help_text="The IANA time zone the cron expression is read in, such as America/Chicago.",
                        max_length=64,
                        validators=[core.timefmt.validate_zone],
                    ),
                ),
                (
                    "window_start",
                    models.TimeField(
                        blank=True,
                        help_text="Off-peak window start (the schedule's zone); empty for none.",
                        null=True,
                    ),
                ),
                (
                    "window_end",
                    models.TimeField(
                        blank=True, help_text="Off-peak window end; may pass midnight.", null=True
                    ),
                ),
                (
                    "missed",
                    models.CharField(
                        choices=[("run_once", "Run once on start"), ("skip", "Skip it")],
                        default="run_once",
                        max_length=8,
                    ),
                ),
                ("paused", models.BooleanField(default=False)),
                (
                    "next_run_at",
                    models.DateTimeField(
                        help_text="The next occurrence, once claimed moved to the one after."
                    ),
                ),
                ("last_run_at", models.DateTimeField(blank=True, null=True)),
                (
                    "last_message",
                    models.TextField(blank=True, help_text="What the last occurrence did or why not."),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "district",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="schedules",
                        to="resync.district",
                    ),
                ),
                (
                    "state",
                    models.ForeignKey(
                        blank=True,
                        help_text="Every district of this state (leave the district empty).",
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="schedules",
                        to="resync.state",
                    ),
                ),
            ],
            options={
                "ordering": ["next_run_at", "id"],
                "indexes": [models.Index(fields=["paused", "next_run_at"], name="schedule_due")],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            ("district__isnull", True), ("state__isnull", True), _connector="XOR"
                        ),
                        name="schedule_one_target",
                        violation_error_message="Choose either one district or a state (every district of it), not both.",
                    )
                ],
            },
        ),
    ]
