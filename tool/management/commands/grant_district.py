from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from guardian.shortcuts import assign_perm

from resync import rights
from resync.groups import DISTRICT_ADMINS
from resync.models import District, SyncObject
from resync.planner import PlanError, resolve


class Command(BaseCommand):
    help = "Give a user the right to resync a district (and, with --objects, single sync objects)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("district", help="District code.")
        parser.add_argument("--admin", action="store_true", help="Also make them a District Administrator.")
        parser.add_argument(
            "--objects", nargs="+", default=[], help="Tool rights for these sync objects only."
        )

    def handle(self, *args, username, district, admin, objects, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        found = District.objects.filter(code=district).first()
        if found is None:
            raise CommandError(f"No district with code {district!r}.")
        try:
            names = resolve(SyncObject.objects.parents_map(), objects)
        except PlanError as e:
            raise CommandError(str(e)) from None
        user.is_staff = True  # district users work in the admin
        user.save(update_fields=["is_staff"])
        assign_perm(rights.DISTRICT, user, found)
        for obj in SyncObject.objects.filter(name__in=names):
            assign_perm(rights.OBJECT, user, obj)
        if admin:
            user.groups.add(Group.objects.get(name=DISTRICT_ADMINS))
        self.stdout.write(
            f"{username} may resync district {found.code}" + (f": {', '.join(names)}" if names else ".")
        )
