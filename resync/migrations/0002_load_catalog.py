from django.db import migrations


def load(apps, schema_editor):
    from resync.catalog import load_catalog

    load_catalog(apps.get_model("resync", "SyncObject"), apps.get_model("resync", "SyncObjectParent"))


class Migration(migrations.Migration):
    dependencies = [("resync", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
