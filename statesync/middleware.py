"""Middleware every request passes: input no view could store, and refusals of a right.

- `RefuseNulBytes` answers 400 for a NUL byte anywhere in the path, the query
  string, a header (cookies, Authorization) or a form body. PostgreSQL refuses
  NUL in text, so every view that looked such a value up answered 500 there
  (SQLite simply found nothing); refusing it once, here, covers every view.
- `LogRefusals` reports every 403 through `core.errors.log_refusal`: whatever the
  door (an admin page, an API endpoint), a refused right is logged with who,
  where and what, without each view having to remember to.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from core.errors import bad_request_answer, log_refusal, refusals

NUL = "\x00"


def _nul_in(request: HttpRequest) -> str | None:
    """Where a NUL byte is in the request, or None."""
    if NUL in request.path_info:
        return "the path"
    for key, values in request.GET.lists():
        if NUL in key or any(NUL in v for v in values):
            return f"the query parameter {key.replace(NUL, '')!r}"
    for key, value in request.META.items():
        if key.startswith("HTTP_") and isinstance(value, str) and NUL in value:
            return f"the {key[5:].replace('_', '-').title()} header"
    # Only forms: Django parses nothing else into POST, and the API's JSON
    # parser refuses NUL itself (core/parsers.py).
    if request.method == "POST" and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        for key, values in request.POST.lists():
            if NUL in key or any(NUL in v for v in values):
                return f"the form field {key.replace(NUL, '')!r}"
    return None


class RefuseNulBytes:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        where = _nul_in(request)
        if where is not None:
            return bad_request_answer(request, f"A NUL byte (\\x00) in {where}: no value may contain one.")
        return self.get_response(request)


# The refusals logged while the current request runs: a door that logs its own
# refusal before raising PermissionDenied is not logged a second time here.
_logged: contextvars.ContextVar[list | None] = contextvars.ContextVar("refusals_logged", default=None)


class _Seen(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        seen = _logged.get()
        if seen is not None:
            seen.append(record)
        return True


refusals.addFilter(_Seen())


def door(request: HttpRequest) -> str:
    return "api" if request.path_info.startswith("/api/") else "admin"


class LogRefusals:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _logged.set([])
        try:
            response = self.get_response(request)
            logged = bool(_logged.get())
        finally:
            _logged.reset(token)
        if response.status_code == 403 and not logged:
            reason = getattr(request, "_refusal", None) or _detail(response) or "forbidden"
            what = f"{request.method} {request.path}: {reason}"
            log_refusal(getattr(request, "user", None), door(request), what)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        # Django turns PermissionDenied into the 403 page, losing its message: keep it for the log.
        if isinstance(exception, PermissionDenied):
            request._refusal = str(exception) or "permission denied"


def _detail(response: HttpResponse) -> str | None:
    data = getattr(response, "data", None)  # a DRF response: its detail names the missing right
    if isinstance(data, dict) and "detail" in data:
        return str(data["detail"])
    return None
