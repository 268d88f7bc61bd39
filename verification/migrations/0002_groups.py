"""Give the ready-made groups the Verification Summary, Selective Sync and year switch rights."""

from django.db import migrations

from resync import groups


def grant(apps, schema_editor):
    groups.make_permissions(apps, ("resync", "verification"))
    groups.grant_tool_perms(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


class Migration(migrations.Migration):
    dependencies = [
        ("verification", "0001_initial"),
        ("resync", "0006_year_switch_and_selective_sync"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
