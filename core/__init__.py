"""Plumbing every StateSync app shares, and nothing that knows what a resync is.

`core` is a plain package, not a Django app: it has no models and imports no
app of ours (resync, history, alerts, …), only Django, DRF, Channels and the
standard library, so every app may import it and it can never close a cycle.
It holds the refusals and their one status mapping (`errors`), the API's JSON
parser (`parsers`), the API's shared toolkit (`api`), the live event bus
(`events`) and the admin mixins every app's admin uses (`admin`).
"""
