# Two alert names of their own (issue 15): a cancelled request's (it reused Resync
# Finished) and a scheduled occurrence refused at send time. Choices only: no schema change.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0002_processalert_name_choices"),
    ]

    operations = [
        migrations.AlterField(
            model_name="processalert",
            name="name",
            field=models.CharField(
                choices=[
                    ("State Resync Requested", "State Resync Requested"),
                    ("Resync Finished", "Resync Finished"),
                    ("Resync Cancelled", "Resync Cancelled"),
                    ("Scheduled Resync Refused", "Scheduled Resync Refused"),
                    ("Verification Finished", "Verification Finished"),
                    ("Start-of-Year Resync Needed", "Start-of-Year Resync Needed"),
                ],
                max_length=100,
            ),
        ),
    ]
