"""Requests a schedule sent (issue 15) name it: ResyncRequest.schedule."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("resync", "0014_district_time_zone_field_label"),
        ("schedules", "0001_schedule"),
    ]

    operations = [
        migrations.AddField(
            model_name="resyncrequest",
            name="schedule",
            field=models.ForeignKey(
                blank=True,
                help_text="The schedule that sent it; empty when a person did.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="requests",
                to="schedules.schedule",
            ),
        ),
    ]
