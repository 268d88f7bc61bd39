from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from audit.doors import CommandDoor
from core.errors import REFUSALS
from resync import rights
from resync.models import ResyncRequest
from tool import actions


class Command(CommandDoor, BaseCommand):
    help = (
        "Cancel a waiting resync request (none of its steps started), through the same checks "
        "as the admin and the API; --user checks that user's rights, else an operator's."
    )

    def add_arguments(self, parser):
        parser.add_argument("request", help="The request's id.")
        parser.add_argument(
            "--user", default=None, help="Cancel as this user, with their rights (default: as an operator)."
        )

    def handle(self, *args, request, user=None, **options):
        who = None
        if user is not None:
            who = User.objects.filter(username=user).first()
            if who is None:
                raise CommandError(f"No user named {user!r}.")
        if not request.isascii() or not request.isdigit():
            raise CommandError(f"Request {request!r} is not a request id (digits).")
        req = ResyncRequest.objects.select_related("district", "requested_by").filter(pk=int(request)).first()
        # As the API: a request the user may not see reads as one that does not exist.
        if req is None or (who is not None and not rights.may_see_request(who, req)):
            raise CommandError(f"No resync request {request}" + (f" that {user} may see." if who else "."))
        try:
            actions.check_cancel(req, who)
            req = actions.do_cancel(req, who)
        except REFUSALS as e:
            raise CommandError(str(e)) from None
        self.stdout.write(
            f"Cancelled request {req.pk} of district {req.district.code} for {req.school_year}: "
            "none of its steps will run."
        )
