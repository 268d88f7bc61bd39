"""Refusals, their HTTP status, and error answers that name the problem.

- `RightsError` (a missing right) and `ResyncError` (input StateSync refuses)
  are what every `check_*` raises; `status_for` maps them, once, onto the status
  every door answers: 403, 400, and 404 for what is absent or not the user's to
  know of. The API (`core.api.refusals_answered`) and the admin tool's JSON
  answers both use it, so the same refusal gets the same status at either door.
- `log_refusal` writes every refusal of a right to the `statesync.refusals`
  logger, whatever the door (admin, api, websocket, job, command).
- `handler400`, `handler404` and `handler500` (statesync/urls.py) use
  `bad_request`, `page_not_found` and `server_error`: a 400 Django raises itself
  (too many query parameters, a body over the size limit, a bad admin filter)
  says why, and nothing under /api/ ever answers Django's HTML page.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.views import defaults


class RightsError(PermissionError):
    """Refused for lack of a right; the message names what is missing."""


class ResyncError(ValueError):
    """Input StateSync refuses; the message names the problem, `field` the input at fault."""

    def __init__(self, message: str, field: str = "objects"):
        super().__init__(message)
        self.field = field


# What the check_* functions raise: a door catches these and answers them.
REFUSALS = (RightsError, ResyncError)


class Busy(ResyncError):
    """Refused for now, not for what was sent: the same call may succeed once the work
    named in the message ends (a 409 with Retry-After at the API)."""

    retry_after = 30  # seconds a client is told to wait before trying again


def status_for(error: Exception) -> int:
    """The HTTP status that answers `error` at every door (API, admin tool, JSON answers)."""
    if isinstance(error, (RightsError, PermissionDenied)):  # PermissionDenied: Django's own 403
        return 403
    if isinstance(error, Busy):
        return 409
    if isinstance(error, ResyncError):
        return 400
    if isinstance(error, (Http404, ObjectDoesNotExist)):
        return 404
    return 500


# Every refusal of a right, whatever the door, at warning level: who, which door, what.
refusals = logging.getLogger("statesync.refusals")


def log_refusal(user, door: str, what: str) -> None:
    """Log that `user` was refused at `door` (admin, api, websocket, job, command): `what` they tried."""
    who = user.username if user is not None and getattr(user, "is_authenticated", False) else "anonymous"
    refusals.warning("refused %s at %s: %s", who, door, what)


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/") or request.path_info == "/api"


def bad_request_answer(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    if is_api(request):
        return JsonResponse({"detail": message}, status=status)
    # Plain text: the message may quote what the client sent, and text is never markup.
    response = HttpResponseBadRequest(f"Bad request: {message}\n", content_type="text/plain; charset=utf-8")
    response.status_code = status
    return response


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: Django's own page says only "Bad Request (400)"."""
    return bad_request_answer(request, str(exception) or "the request could not be read.")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JSON for the API, Django's page (admin's look) for the rest."""
    if is_api(request):
        return JsonResponse({"detail": f"No API endpoint at {request.path}."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a client of the API reads JSON even when StateSync itself failed;
    the answer names no cause (the traceback goes to the log, not to the client)."""
    if is_api(request):
        return JsonResponse({"detail": "Server error: StateSync failed to answer; it is logged."}, status=500)
    return defaults.server_error(request)
