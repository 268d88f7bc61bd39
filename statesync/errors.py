"""Error answers that name the problem: JSON under /api/, Django's pages elsewhere.

`handler400` and `handler404` (statesync/urls.py) use these, so a 400 Django
raises itself (too many query parameters, a body over the size limit, a bad
admin filter) says why, and nothing under /api/ ever answers Django's HTML page.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.views import defaults


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
