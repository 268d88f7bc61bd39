"""state-records/?changed_since= reads the rows written since from an index (created on the
state alias only: the router sends StateRecord there)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("resync", "0011_load_field_schemas"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="staterecord",
            index=models.Index(fields=["synced_at"], name="state_record_synced"),
        ),
    ]
