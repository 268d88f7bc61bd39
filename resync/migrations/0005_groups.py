"""Ship the "District Administrator" and "State Administrator" groups."""

from django.db import migrations

from resync import groups


def create_groups(apps, schema_editor):
    groups.make_permissions(apps, ("resync", "history"))
    groups.create_groups(
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
