"""VerificationRun.level: a run a state user asked for is the state's, as their resync
requests are. Existing runs take the level their requester's rights give today."""

from django.db import migrations, models
from django.db.models import Q


def level_by_requester(apps, schema_editor):
    # resync.actions.level_for's test (may send and see state requests), read from the
    # rows: a superuser, or both permissions, each held directly or through a group. Runs
    # of a deleted requester stay the district's, as runs asked for by the system are.
    Permission = apps.get_model("auth", "Permission")
    User = apps.get_model("auth", "User")
    VerificationRun = apps.get_model("verification", "VerificationRun")

    def holding(codename: str):
        perm = Permission.objects.filter(content_type__app_label="resync", codename=codename)
        held = Q(user_permissions__in=perm) | Q(groups__permissions__in=perm)
        return User.objects.filter(held | Q(is_superuser=True), is_active=True).values("pk")

    state = VerificationRun.objects.filter(requested_by__in=holding("send_state_resync")).filter(
        requested_by__in=holding("view_state_resync")
    )
    state.update(level="state")


class Migration(migrations.Migration):
    dependencies = [
        ("verification", "0003_run_recovery"),
        ("resync", "0007_district_records_deleted_at"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.AddField(
            model_name="verificationrun",
            name="level",
            field=models.CharField(
                choices=[("district", "District"), ("state", "State")],
                default="district",
                help_text="State: asked for by the state; the district never sees it.",
                max_length=8,
            ),
        ),
        migrations.RunPython(level_by_requester, migrations.RunPython.noop),
    ]
