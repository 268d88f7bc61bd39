"""`{{ moment|local:district }}`: a time in a district's zone, named (core.timefmt.when)."""

import datetime as dt

from django import template

from core import timefmt

register = template.Library()


@register.filter
def local(moment: dt.datetime | None, owner: object = None) -> str:
    """`moment` in `owner`'s zone (a District, a zone name; the project's for none); "—" for none."""
    return timefmt.when(moment, owner) or "—"
