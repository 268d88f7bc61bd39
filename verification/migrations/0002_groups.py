"""Give the ready-made groups the Verification Summary, Selective Sync and year switch rights."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    # Permissions are normally made after all migrations; this one needs them now.
    for label in ("resync", "verification"):
        config = apps.get_app_config(label)
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    from resync.rights import grant_tool_perms

    grant_tool_perms(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


class Migration(migrations.Migration):
    dependencies = [
        ("verification", "0001_initial"),
        ("resync", "0006_year_switch_and_selective_sync"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
