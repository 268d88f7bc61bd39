"""{% request_progress req %}: a request's live progress block, for its admin page."""

from __future__ import annotations

from django import template

from resync.models import ResyncRequest
from tool import progress

register = template.Library()


@register.inclusion_tag("admin/resync/request_progress.html")
def request_progress(req: ResyncRequest) -> dict:
    """The request page's caller has already checked the user may see `req`."""
    return {"p": progress.of([req])[req.pk]}
