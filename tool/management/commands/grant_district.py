import secrets

from django.contrib.auth.models import Group, Permission, User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction
from guardian.shortcuts import assign_perm

from audit import doors
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
            "--create",
            action="store_true",
            help="Create the user first, with a new password printed once (refused if they exist).",
        )
        parser.add_argument("--email", default="", help="With --create: the user's email address.")
        parser.add_argument(
            "--load",
            action="store_true",
            help="Also give district data W: loading records (files, upload, API) into every district "
            "they may resync (it is one right, not one per district).",
        )
        parser.add_argument(
            "--objects", nargs="+", default=[], help="Tool rights for these sync objects only."
        )

    def handle(self, *args, username, district, admin, objects, create, email, load=False, **options):
        for value, what in ((username, "A username"), (district, "A district code"), (email, "An email")):
            if "\x00" in value:  # PostgreSQL refuses it in any query: say so before asking
                raise CommandError(f"{what} cannot hold a NUL character (\\x00).")
        user = User.objects.filter(username=username).first()
        if user is None and not create:
            raise CommandError(f"No user named {username!r}: add --create to create them.")
        if user is not None and create:
            raise CommandError(
                f"User {username!r} exists already: leave out --create to grant them the district."
            )
        if email and not create:
            raise CommandError("--email is for --create: change an existing user's address in the admin.")
        found = District.objects.filter(code=district).first()
        if found is None:
            raise CommandError(f"No district with code {district!r}.")
        try:
            names = resolve(SyncObject.objects.parents_map(), objects)
            password = self.checked_new_user(username, email) if create else ""
        except (PlanError, ValidationError) as e:
            raise CommandError("; ".join(getattr(e, "messages", [str(e)]))) from None
        with transaction.atomic(), doors.entered(doors.COMMAND):
            if create:
                user = User.objects.create_user(username, email, password)
            self.grant(user, found, names, admin)
            if load:
                user.user_permissions.add(
                    Permission.objects.get(content_type__app_label="loads", codename="load_district_data")
                )
        if create:
            self.stdout.write(f"Created user {username} with password: {password}")
            self.stdout.write(
                "It is shown only now: give it to them, and they change it at /admin/password_change/."
            )
        self.stdout.write(
            f"{username} may resync district {found.code}" + (f": {', '.join(names)}" if names else ".")
        )
        if load:
            self.stdout.write(
                f"{username} may load records into every district they may resync (district data W)."
            )

    def checked_new_user(self, username: str, email: str) -> str:
        """A new user's password, after the checks the admin's add-user form makes."""
        User.username_validator(username)
        if len(username) > User._meta.get_field("username").max_length:
            raise ValidationError(f"A username has at most 150 characters, not {len(username)}.")
        if email:
            validate_email(email)
        password = secrets.token_urlsafe(12)
        validate_password(password, User(username=username, email=email))
        return password

    def grant(self, user: User, found: District, names: list[str], admin: bool) -> None:
        user.is_staff = True  # district users work in the admin
        user.save(update_fields=["is_staff"])
        assign_perm(rights.DISTRICT, user, found)
        for obj in SyncObject.objects.filter(name__in=names):
            assign_perm(rights.OBJECT, user, obj)
        if admin:
            user.groups.add(Group.objects.get(name=DISTRICT_ADMINS))
