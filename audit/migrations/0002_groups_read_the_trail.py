"""The District Administrators get audit R: they read their districts' entries (the
State Administrators read every one by state R and W; audit.rights). Adds only."""

from django.db import migrations

from audit.rights import GROUPS
from resync import groups


def grant(apps, schema_editor) -> None:
    groups.make_permissions(apps, ("audit",))
    Group, Permission = apps.get_model("auth", "Group"), apps.get_model("auth", "Permission")
    groups.grant(Group, Permission, GROUPS)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("resync", "0009_group_permissions"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
