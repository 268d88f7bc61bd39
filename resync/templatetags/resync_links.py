from django import template

from resync import rights

register = template.Library()


@register.simple_tag(takes_context=True)
def resync_links(context) -> dict:
    """What the admin home offers this user: their districts' tools, and the state tool."""
    user = context["request"].user
    return {"districts": list(rights.districts(user)[:50]), "state": rights.is_state(user)}
