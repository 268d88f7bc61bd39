"""Each district's time zone (issue 14, item 9), and the schema fields that name a
record to a person (item 8): the shipped ones (resync.field_catalog) are marked."""

from django.db import migrations, models

import core.timefmt


def mark_labels(apps, schema_editor):
    from resync.field_catalog import SCHEMAS

    field_model = apps.get_model("resync", "SyncField")
    for name, fields in SCHEMAS.items():
        labels = [f.name for f in fields if f.label]
        if labels:
            field_model.objects.filter(sync_object__name=name, name__in=labels).update(label=True)


class Migration(migrations.Migration):
    dependencies = [("resync", "0013_request_cancel")]

    operations = [
        migrations.AddField(
            model_name="district",
            name="time_zone",
            field=models.CharField(
                default=core.timefmt.default_zone,
                help_text="The IANA time zone its times are shown in, such as America/Chicago.",
                max_length=64,
                validators=[core.timefmt.validate_zone],
            ),
        ),
        migrations.AddField(
            model_name="syncfield",
            name="label",
            field=models.BooleanField(
                default=False,
                help_text="Names the record to a person: shown beside its id in the Error Log.",
            ),
        ),
        migrations.RunPython(mark_labels, migrations.RunPython.noop),
    ]
