"""A webhook's safety: its signature, and the addresses it may be POSTed to.

The signature is HMAC-SHA256 over "<unix time>.<body>" with the webhook's secret,
sent as `X-StateSync-Signature: t=<unix>,v1=<hex>`; the time inside the signed text
lets a receiver refuse a replayed old delivery (README, Notifications).

A webhook's URL is chosen by a district administrator, so without a check it could
make the server POST to its own loopback, the cloud's metadata address or the
private network behind it (SSRF). check_address refuses those when the webhook is
saved (the admin's form and the API's serializer both call it), and the delivery
judges again every address the name resolves to when it connects (notify.jobs): DNS
may answer differently by then. address_refusal is the one judgement both use.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from urllib.parse import urlsplit

from django.conf import settings

from core.errors import ResyncError

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


# IPv6 that carries an IPv4 address a gateway forwards to: NAT64's well-known prefix.
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def address_refusal(address: str) -> str:
    """Why a webhook may not be POSTed to the IP `address` ("" when it may): only a
    public unicast address is allowed. An IPv6 address carrying an IPv4 one (mapped,
    6to4, NAT64) is judged by the IPv4 one, which is where it ends up."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # a link-local zone: fe80::1%eth0
    except ValueError:
        return "not an IP address"
    if ip.version == 6:
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is None and ip in NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            ip = inner
    # Most telling first: 169.254.169.254 is link-local (and private too).
    for test, what in (
        ("is_unspecified", "an unspecified address"),
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_reserved", "a reserved address"),
        ("is_private", "a private address"),
    ):
        if getattr(ip, test):
            return what
    return "" if ip.is_global else "not a public address"


def refusal_message(url: str, host: str, address: str, why: str) -> str:
    named = address if host.split("%", 1)[0] == address else f"{host} ({address})"
    return (
        f"{url!r} points at {named}, {why}: a webhook may only POST to a public address "
        "(WEBHOOK_ALLOW_PRIVATE=true allows private ones)."
    )


def resolved(host: str, port: int | None = None) -> list[str]:
    """The IP addresses `host` resolves to now; [] when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [info[4][0] for info in infos]


def check_address(url: str) -> str:
    """`url`, when a webhook may be saved with it: http or https, and (unless
    WEBHOOK_ALLOW_PRIVATE) a host that is, or resolves only to, public addresses.

    A name that does not resolve yet is let through (its receiver may not be in DNS
    yet): each delivery resolves and judges it again before it connects.
    """
    try:
        host = urlsplit(url).hostname
        scheme = urlsplit(url).scheme
    except ValueError:  # an unclosed [IPv6 bracket
        host = scheme = None
    if scheme not in ("http", "https") or not host:
        raise ResyncError(f"{url!r} is not an http:// or https:// address.", field="url")
    if settings.WEBHOOK_ALLOW_PRIVATE:
        return url
    try:
        literal = host.split("%", 1)[0]
        ipaddress.ip_address(literal)
        addresses = [literal]  # named as written
    except ValueError:
        addresses = resolved(host)
    for address in addresses:
        why = address_refusal(address)
        if why:
            raise ResyncError(refusal_message(url, host, address, why), field="url")
    return url
