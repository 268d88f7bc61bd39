"""The webhook signature: HMAC-SHA256 over "<unix time>.<body>" with the webhook's secret.

Sent as `X-StateSync-Signature: t=<unix>,v1=<hex>`; the time inside the signed text
lets a receiver refuse a replayed old delivery (README, Notifications).
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-StateSync-Signature"
EVENT_HEADER = "X-StateSync-Event"


def digest(secret: str, t: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    return f"t={t},v1={digest(secret, t, body)}"


def verify(secret: str, header: str, body: bytes, tolerance: int = 300, now: float | None = None) -> bool:
    """Does `header` sign `body` with `secret`, no more than `tolerance` seconds ago?"""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    return hmac.compare_digest(parts.get("v1", ""), digest(secret, t, body))
