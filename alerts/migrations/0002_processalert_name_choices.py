# The alert names, gathered in AlertName, become the field's choices: no schema
# change, only what forms, the admin's filter and the API schema offer.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="processalert",
            name="name",
            field=models.CharField(
                choices=[
                    ("State Resync Requested", "State Resync Requested"),
                    ("Resync Finished", "Resync Finished"),
                    ("Verification Finished", "Verification Finished"),
                    ("Start-of-Year Resync Needed", "Start-of-Year Resync Needed"),
                ],
                max_length=100,
            ),
        ),
    ]
