"""Re-apply the ready-made groups' permissions (resync.groups): an install whose groups
were seeded before a permission joined a list gets it now. Adds only, so it is safe
to run on any install and to copy for the next permission a group gains."""

from django.db import migrations

from resync import groups


class Migration(migrations.Migration):
    dependencies = [
        ("resync", "0008_request_steps_failed"),
        ("history", "0003_malformed_reason"),
        ("verification", "0004_run_level"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]
    operations = [migrations.RunPython(groups.reapply, migrations.RunPython.noop)]
