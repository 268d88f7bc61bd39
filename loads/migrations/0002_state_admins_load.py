"""The State Administrator group gets the district data W right (loads.load_district_data):
the state's administrators load data for every district. Adds only; a District
Administrator gets it one by one, as a district's loads are its own to grant."""

from django.db import migrations

from resync import groups


def grant(apps, schema_editor) -> None:
    groups.make_permissions(apps, ("loads",))
    Group, Permission = apps.get_model("auth", "Group"), apps.get_model("auth", "Permission")
    groups.grant(Group, Permission, {groups.STATE_ADMINS: groups.LOAD_STATE_PERMS})


class Migration(migrations.Migration):
    dependencies = [
        ("loads", "0001_load"),
        ("resync", "0009_group_permissions"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
