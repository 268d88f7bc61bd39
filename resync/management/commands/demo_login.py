import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create the demo superuser 'admin' with a fresh password and print the login; "
        "an existing one keeps its password (--reset gives it a fresh one)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--port", type=int, default=8000, help="The port the app is served on.")
        parser.add_argument("--reset", action="store_true", help="Give the user a fresh password.")

    def handle(self, *args, username, port, reset, **options):
        # The first password is kept beside the databases (owner-only), so a re-run of
        # bin/demo can print the same login instead of changing it under a signed-in user.
        saved = Path(settings.DATA_DIR) / "demo-login"
        url = f"http://127.0.0.1:{port}/admin/"
        user = User.objects.filter(username=username).first()
        if user is not None and not reset:
            password = saved.read_text().strip() if saved.exists() else ""
            if password and user.check_password(password):
                self.stdout.write(f"Log in at {url} as {username} / {password} (kept)")
            else:
                self.stdout.write(
                    f"Log in at {url} as {username} with the password you set "
                    "(bin/demo --reset starts afresh)"
                )
            return
        password = secrets.token_urlsafe(12)
        user = user or User(username=username, email=f"{username}@example.org")
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.touch(mode=0o600)
        saved.write_text(password + "\n")
        self.stdout.write(f"Log in at {url} as {username} / {password}")
