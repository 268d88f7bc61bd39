"""Where a step runs: its life cycle, the engine that moves its records, and RQ's plumbing.

A plain package, not an app: it owns no models (a step's row is history's).
"""
