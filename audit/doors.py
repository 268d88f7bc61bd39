"""Which door a change came through, without passing it down every call.

A context variable, set by the entry points: the middleware for every HTTP request
(/api/ is the API, the rest the admin and the tool's pages), a command with
`entered(COMMAND)`, a schedule with `entered(SCHEDULE)`. Nothing set is the system
itself (a worker, a migration). Chosen over a `door` argument on every do_* function:
the actions stay as they are and a new door sets one line where it starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.http import HttpRequest

ADMIN, API, COMMAND, SCHEDULE, SYSTEM = "admin", "api", "command", "schedule", "system"
CHOICES = [(d, d.title() if d != API else "API") for d in (ADMIN, API, COMMAND, SCHEDULE, SYSTEM)]

_door: ContextVar[str] = ContextVar("audit_door", default=SYSTEM)
# The HTTP request, read at record time: DRF authenticates a token in the view, after
# the middleware ran, and sets the user on this same request.
_request: ContextVar[HttpRequest | None] = ContextVar("audit_request", default=None)


def current() -> str:
    return _door.get()


def current_user():
    """The signed-in user of the HTTP request being served, or None."""
    request = _request.get()
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


@contextmanager
def entered(door: str, request: HttpRequest | None = None) -> Iterator[None]:
    """Everything inside came through `door` (and, over HTTP, `request`)."""
    door_token, request_token = _door.set(door), _request.set(request)
    try:
        yield
    finally:
        _door.reset(door_token)
        _request.reset(request_token)


class Door:
    """Middleware: an HTTP request's changes came through the API or the admin."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        with entered(API if request.path.startswith("/api/") else ADMIN, request):
            return self.get_response(request)


class CommandDoor:
    """A management command's mixin: what it changes came through the command door
    (`class Command(CommandDoor, BaseCommand)`)."""

    def execute(self, *args, **options):
        with entered(COMMAND):
            return super().execute(*args, **options)
