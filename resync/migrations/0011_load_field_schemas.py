"""Load the shipped field schemas (resync.field_catalog): from here on they are the
state administrators' to edit, so a reload adds missing fields and changes none."""

from django.db import migrations


def load(apps, schema_editor):
    from resync.field_catalog import load_field_catalog

    load_field_catalog(apps.get_model("resync", "SyncObject"), apps.get_model("resync", "SyncField"))


class Migration(migrations.Migration):
    dependencies = [("resync", "0010_field_schemas")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
