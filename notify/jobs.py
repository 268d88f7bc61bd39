"""From a Process Alert to an email and a webhook POST, in RQ jobs after the commit.

alerts.models sends `alerts_created` once the alerts' transaction has committed;
`fan_out` enqueues one `send_email` per subscribed recipient and one `deliver`
per matching webhook. A webhook that fails (no answer, or not a 2xx) makes its
job raise, and RQ's Retry runs it again after NOTIFY_RETRY_INTERVALS; each
attempt is a Delivery row.

A POST connects only to addresses notify.signing.address_refusal allows, judged
when it connects (DNS may have changed since the webhook was saved), and through
no proxy and no redirect, either of which would take it elsewhere. A refused
address is a failed Delivery naming why, and is not retried: the answer would be
the same.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlsplit

import django_rq
from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Count, Q, Sum
from rq import Retry

from alerts.models import AlertName, ProcessAlert
from history.models import DISBatchHistory
from resync.models import ResyncRequest

from . import signing
from .models import Delivery, EmailSubscription, Webhook

log = logging.getLogger(__name__)

TIMEOUT = 10  # seconds a receiver has to answer one POST


class DeliveryFailed(Exception):
    """The receiver did not take the POST: RQ retries the job."""


class AddressRefused(OSError):
    """The webhook's host resolves to an address it may not be POSTed to."""


def connect_public(
    address: tuple[str, int],
    timeout: float | object = socket._GLOBAL_DEFAULT_TIMEOUT,
    source_address: tuple[str, int] | None = None,
) -> socket.socket:
    """socket.create_connection for a webhook: resolve once, refuse the lot if any
    address is not public (unless WEBHOOK_ALLOW_PRIVATE), then connect to those very
    addresses, so no second lookup can swap in another."""
    host, port = address
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not settings.WEBHOOK_ALLOW_PRIVATE:
        for *_, sockaddr in infos:
            why = signing.address_refusal(sockaddr[0])
            if why:
                named = f"{host} is" if host == sockaddr[0] else f"{host} resolves to {sockaddr[0]},"
                raise AddressRefused(f"{named} {why}")
    error: OSError = OSError(f"{host} resolves to no address")
    for family, kind, proto, _name, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as e:
            sock.close()
            error = e
    raise error


class PublicHTTP(http.client.HTTPConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = connect_public


class PublicHTTPS(http.client.HTTPSConnection):
    # HTTPSConnection.connect opens its socket through HTTPConnection.connect, then TLS
    # on it with the URL's host name: the certificate is still checked against the name.
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = connect_public


class PublicHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(PublicHTTP, req)


class PublicHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(PublicHTTPS, req, context=self._context, check_hostname=self._check_hostname)


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx is then an HTTPError: a failed delivery, as any non-2xx


# No ProxyHandler from the environment: through a proxy the address judged would be
# the proxy's, not the receiver's.
opener = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), PublicHTTPHandler, PublicHTTPSHandler, NoRedirects
)


def absolute(link: str) -> str:
    return settings.SITE_URL.rstrip("/") + link if link else ""


def fan_out(sender=None, alerts: list[ProcessAlert] = (), **kwargs) -> None:
    """Enqueue the mails and POSTs for alerts just committed (one notify call: one event)."""
    if not alerts:
        return
    try:
        _fan_out(list(alerts))
    except Exception:
        # The alerts are stored and in their inboxes; a lost notification must not
        # turn the request that made them into an error after its commit.
        log.exception("notifications for alert %s not sent", alerts[0].pk)


def _fan_out(alerts: list[ProcessAlert]) -> None:
    first = alerts[0]
    queue = django_rq.get_queue(settings.RQ_QUEUE)
    subscribed = set(
        EmailSubscription.objects.filter(
            user_id__in=[a.user_id for a in alerts], name=first.name
        ).values_list("user_id", flat=True)
    )
    for alert in alerts:
        if alert.user_id in subscribed:
            queue.enqueue(send_email, alert.pk)
    hooks = Webhook.objects.filter(active=True).filter(Q(district=None) | Q(district_id=first.district_id))
    key = uuid.uuid4().hex
    retry = Retry(max=len(settings.NOTIFY_RETRY_INTERVALS), interval=settings.NOTIFY_RETRY_INTERVALS)
    for hook in hooks.select_related("district"):
        if first.name not in hook.names:
            continue
        body = payload(first, state=hook.district_id is None)
        if body is None:
            continue
        queue.enqueue(deliver, hook.pk, first.name, json.dumps(body), key, retry=retry)


def payload(alert: ProcessAlert, state: bool) -> dict | None:
    """The JSON a webhook receives; None when this webhook is not to hear of it.

    A district's webhook hears of a state request only what the district's users are
    told (the State Resync Requested alert: district, year, its words and the tool's
    link), never the request, its objects, outcome or counts.
    """
    request: ResyncRequest | None = alert.request
    hidden = request is not None and request.level == ResyncRequest.Level.STATE and not state
    if hidden and alert.name != AlertName.STATE_RESYNC_REQUESTED:
        return None
    body = {
        "event": alert.name,
        "message": alert.message,
        "district": alert.district.code if alert.district_id else None,
        "year": request.school_year if request else None,
        "request": None,
        "outcome": None,
        "counts": None,
        "links": {"page": absolute(alert.link)} if alert.link else {},
    }
    if request is None or hidden:
        return body
    body["request"] = request.pk
    body["outcome"] = request.outcome or None
    totals = DISBatchHistory.objects.filter(request=request).aggregate(
        steps=Count("id"), processed=Sum("processed"), errors=Sum("errors")
    )
    body["counts"] = {
        "steps": totals["steps"],
        "steps_failed": request.steps_failed or 0,
        "processed": totals["processed"] or 0,
        "errors": totals["errors"] or 0,
    }
    return body


def send_email(alert_id: int) -> None:
    """Mail one alert to its user, if they still want it and have an address."""
    alert = ProcessAlert.objects.select_related("user").filter(pk=alert_id).first()
    if alert is None or not alert.user.email or not alert.user.is_active:
        return
    if not EmailSubscription.objects.filter(user=alert.user, name=alert.name).exists():
        return  # unsubscribed since
    # The alert's own words and link only: what the inbox shows (a state request stays unnamed).
    text = alert.message + (f"\n\n{absolute(alert.link)}" if alert.link else "")
    text += "\n\nChoose which alerts reach you by email under My notifications."
    send_mail(f"[StateSync] {alert.name}", text, None, [alert.user.email])


def deliver(webhook_id: int, event: str, body: str, key: str) -> None:
    """POST one event to one webhook, signed, and record the attempt; raise so RQ retries."""
    hook = Webhook.objects.filter(pk=webhook_id, active=True).first()
    if hook is None:
        return  # removed or switched off since
    attempt = Delivery.objects.filter(webhook=hook, key=key).count() + 1
    data = body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "StateSync-Webhook",
        signing.HEADER: signing.sign(hook.secret, data),
        signing.EVENT_HEADER: event,
    }
    code, error, refused = None, "", False
    try:
        # Saved before the check, or written by SQL: urllib would open file:// and ftp:// too.
        if urlsplit(hook.url).scheme not in ("http", "https"):
            raise AddressRefused(f"{hook.url!r} is not an http:// or https:// address")
        req = urllib.request.Request(hook.url, data=data, method="POST", headers=headers)
        with opener.open(req, timeout=TIMEOUT) as answer:
            code = answer.status
    except urllib.error.HTTPError as e:
        code, error = e.code, f"HTTP {e.code} {e.reason}"
    except (urllib.error.URLError, OSError, ValueError) as e:  # ValueError: a URL urllib cannot read
        reason = getattr(e, "reason", e)
        refused = isinstance(reason, AddressRefused | ValueError)
        error = f"Refused, not retried: {reason}" if refused else str(reason)
    Delivery.objects.create(
        webhook=hook, event=event, key=key, attempt=attempt, status_code=code, error=error[:500]
    )
    if refused:
        return  # listed as failed; the same address would be refused at every retry
    if code is None or not 200 <= code < 300:
        raise DeliveryFailed(f"{hook.url}: {error or code}")
