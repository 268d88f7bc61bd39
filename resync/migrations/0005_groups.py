"""Ship the "District Administrator" and "State Administrator" groups."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_groups(apps, schema_editor):
    # Permissions are normally made after all migrations; this one needs them now.
    for label in ("resync", "history"):
        config = apps.get_app_config(label)
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    from resync.rights import create_groups as create

    create(
        apps.get_model("auth", "Group"),
        apps.get_model("auth", "Permission"),
        apps.get_model("resync", "SyncObject"),
        apps.get_model("resync", "SyncObjectGroupObjectPermission"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("resync", "0004_rights"),
        ("history", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]
    operations = [migrations.RunPython(create_groups, migrations.RunPython.noop)]
