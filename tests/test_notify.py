"""Notifications (issue 15): alerts by email to those who chose them, and by signed
webhook POSTs, retried, each attempt listed; a state request tells a district no more
than its alert does; webhooks are managed by the right people only."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rest_framework.authtoken.models import Token

from alerts.models import AlertName
from notify import signing
from notify.models import Delivery, EmailSubscription, Webhook
from resync.models import ResyncRequest
from tool import actions

from .conftest import BOTH, COMMITTED, add, run_queue

pytestmark = pytest.mark.django_db(databases=BOTH)

FINISHED = AlertName.RESYNC_FINISHED.value
ASKED = AlertName.STATE_RESYNC_REQUESTED.value


def api(client, user, method: str, url: str, body=None):
    headers = {"authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"}
    kwargs = {"content_type": "application/json"} if body is not None else {}
    return getattr(client, method)(url, body, headers=headers, **kwargs)


def resync(district, user, level="district"):
    checked = actions.check_resync(district, None, ["District"], False, user=user, level=level)
    return actions.do_request_resync(checked)


class Receiver:
    """A real HTTP server on loopback that answers 500 to its first `failures` POSTs."""

    def __init__(self, failures: int = 0):
        self.failures = failures
        self.posts: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                failing = len(receiver.posts) <= receiver.failures
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_it_verifies_its_own_signature_and_refuses_a_changed_body_or_an_old_one():
    header = signing.sign("s3cret", b'{"a": 1}', t=1_000_000)
    assert header.startswith("t=1000000,v1=")
    assert signing.verify("s3cret", header, b'{"a": 1}', now=1_000_100)
    assert not signing.verify("s3cret", header, b'{"a": 2}', now=1_000_100)
    assert not signing.verify("other", header, b'{"a": 1}', now=1_000_100)
    assert not signing.verify("s3cret", header, b'{"a": 1}', now=1_000_000 + 301)
    assert not signing.verify("s3cret", "v1=abc", b'{"a": 1}')


def test_it_lets_each_user_choose_their_own_email_alerts_by_the_api(client, cast):
    got = api(client, cast.bob, "put", "/api/v1/notifications/", {"names": [FINISHED]})
    assert got.status_code == 200, got.content
    assert got.json() == {"names": [FINISHED]}
    assert api(client, cast.alice, "get", "/api/v1/notifications/").json() == {"names": []}
    bad = api(client, cast.bob, "put", "/api/v1/notifications/", {"names": ["Nope"]})
    assert bad.status_code == 400 and "Nope" in bad.json()["names"][0]
    assert list(EmailSubscription.objects.values_list("user__username", "name")) == [("bob", FINISHED)]
    assert client.get("/api/v1/notifications/").status_code == 401


def test_it_keeps_my_notifications_in_the_admin_mine_alone(client, cast):
    EmailSubscription.objects.create(user=cast.alice, name=ASKED)
    client.force_login(cast.bob)
    page = client.get("/admin/notify/emailsubscription/")
    assert page.status_code == 200 and ASKED not in page.content.decode()
    added = client.post("/admin/notify/emailsubscription/add/", {"name": FINISHED})
    assert added.status_code == 302
    again = client.post("/admin/notify/emailsubscription/add/", {"name": FINISHED})
    assert "already reaches you by email" in again.content.decode()
    mine = EmailSubscription.objects.get(user=cast.alice)
    assert client.get(f"/admin/notify/emailsubscription/{mine.pk}/change/").status_code == 404
    assert EmailSubscription.objects.filter(user=cast.bob).count() == 1


@COMMITTED
def test_it_emails_a_red_finish_to_the_requester_who_subscribed(client, cast, queue, mailoutbox):
    cast.alice.email, cast.bob.email = "alice@example.org", "bob@example.org"
    cast.alice.save()
    cast.bob.save()
    api(client, cast.alice, "put", "/api/v1/notifications/", {"names": [FINISHED]})
    add(cast.district, "District", 1, excluded=True)  # its only record refused: Red
    request = resync(cast.district, cast.alice)
    run_queue()
    request.refresh_from_db()
    assert request.outcome == "red"
    (mail,) = mailoutbox
    assert mail.to == ["alice@example.org"]
    assert mail.subject == f"[StateSync] {FINISHED}"
    assert f"{request} finished Red." in mail.body
    assert f"http://localhost:8000/admin/resync/resyncrequest/{request.pk}/change/" in mail.body


@COMMITTED
def test_it_posts_a_signed_body_and_retries_a_failing_endpoint_listing_each_attempt(
    client, cast, queue, settings
):
    settings.NOTIFY_RETRY_INTERVALS = [0, 0, 0]  # retried at once: a burst worker runs them
    with Receiver(failures=2) as receiver:
        made = api(
            client,
            cast.alice,
            "post",
            "/api/v1/webhooks/",
            {"district": "101", "url": receiver.url, "names": [FINISHED]},
        )
        assert made.status_code == 201, made.content
        secret = made.json()["secret"]
        add(cast.district, "District", 1, excluded=True)
        request = resync(cast.district, cast.alice)
        run_queue()
    assert len(receiver.posts) == 3
    headers, body = receiver.posts[-1]
    assert signing.verify(secret, headers[signing.HEADER.lower()], body)
    assert headers[signing.EVENT_HEADER.lower()] == FINISHED
    request.refresh_from_db()
    assert json.loads(body) == {
        "event": FINISHED,
        "message": f"{request} finished Red.",
        "district": "101",
        "year": request.school_year,
        "request": request.pk,
        "outcome": "red",
        "counts": {"steps": 1, "steps_failed": request.steps_failed, "processed": 1, "errors": 1},
        "links": {"page": f"http://localhost:8000/admin/resync/resyncrequest/{request.pk}/change/"},
    }
    # The same event each time, signed afresh: the bodies are the same.
    assert {b for _h, b in receiver.posts} == {body}
    attempts = list(Delivery.objects.order_by("attempt").values_list("attempt", "status_code"))
    assert attempts == [(1, 500), (2, 500), (3, 204)]
    hook = made.json()["id"]
    listed = api(client, cast.alice, "get", f"/api/v1/webhooks/{hook}/deliveries/").json()
    assert [(d["attempt"], d["status_code"]) for d in listed["results"]] == [(3, 204), (2, 500), (1, 500)]
    assert "HTTP 500" in listed["results"][-1]["error"]
    client.force_login(cast.alice)
    page = client.get("/admin/notify/delivery/")
    assert page.status_code == 200 and page.content.decode().count("HTTP 500") == 2
    # Charlie (district B) hears of no such webhook nor its deliveries.
    assert api(client, cast.charlie, "get", f"/api/v1/webhooks/{hook}/deliveries/").status_code == 404
    client.force_login(cast.charlie)
    assert "HTTP 500" not in client.get("/admin/notify/delivery/").content.decode()


@COMMITTED
def test_it_tells_a_district_of_a_state_request_only_what_its_alert_says(client, cast, queue, mailoutbox):
    cast.alice.email = "alice@example.org"
    cast.alice.save()
    EmailSubscription.objects.create(user=cast.alice, name=ASKED)
    with Receiver() as theirs, Receiver() as state:
        Webhook.objects.create(district=cast.district, url=theirs.url, names=[ASKED, FINISHED])
        Webhook.objects.create(district=None, url=state.url, names=[ASKED, FINISHED])
        add(cast.district, "District", 1)
        request = resync(cast.district, cast.stella, ResyncRequest.Level.STATE)
        run_queue()
    (only,) = theirs.posts
    told = json.loads(only[1])
    assert told == {
        "event": ASKED,
        "message": told["message"],
        "district": "101",
        "year": request.school_year,
        "request": None,
        "outcome": None,
        "counts": None,
        "links": {"page": "http://localhost:8000/admin/resync/district/101/tool/"},
    }
    assert told["message"].startswith("The state requested a resync of district")
    assert "District" not in told["message"].replace("district", "")  # no object named
    (mail,) = mailoutbox
    assert told["message"] in mail.body and "District\n" not in mail.body
    # The state's own webhook hears both, the finish with its request and counts.
    events = [json.loads(b) for _h, b in state.posts]
    assert sorted(e["event"] for e in events) == sorted([ASKED, FINISHED])
    assert next(e for e in events if e["event"] == FINISHED)["request"] == request.pk


HOOK = {"url": "http://127.0.0.1:9/", "names": [FINISHED]}


@pytest.mark.parametrize(
    "where, expected",
    [
        ("101", {"stella": 201, "alice": 201, "bob": 404, "charlie": 404}),
        ("202", {"stella": 201, "alice": 404, "bob": 404, "charlie": 201}),
        (None, {"stella": 201, "alice": 403, "bob": 403, "charlie": 403}),
    ],
)
def test_it_lets_only_the_right_people_make_a_webhook(client, cast, where, expected):
    got = {}
    for name in expected:
        got[name] = api(client, getattr(cast, name), "post", "/api/v1/webhooks/", {**HOOK, "district": where})
        got[name] = got[name].status_code
    assert got == expected
    assert Webhook.objects.count() == sum(s == 201 for s in got.values())


def test_it_refuses_a_bad_webhook_naming_the_problem(client, cast):
    bad_url = api(
        client, cast.alice, "post", "/api/v1/webhooks/", {**HOOK, "url": "ftp://x", "district": "101"}
    )
    assert bad_url.status_code == 400 and "ftp://x" in bad_url.json()["url"][0]
    bad_name = api(
        client, cast.alice, "post", "/api/v1/webhooks/", {**HOOK, "names": ["Nope"], "district": "101"}
    )
    assert bad_name.status_code == 400 and "Nope" in bad_name.json()["names"][0]
    assert not Webhook.objects.exists()


def test_it_never_shows_a_secret_again_and_hides_other_districts_webhooks(client, cast):
    a = Webhook.objects.create(district=cast.district, **HOOK)
    b = Webhook.objects.create(district=cast.other, **HOOK)
    state = Webhook.objects.create(district=None, **HOOK)
    seen = {
        name: sorted(
            h["id"] for h in api(client, getattr(cast, name), "get", "/api/v1/webhooks/").json()["results"]
        )
        for name in ("stella", "alice", "bob", "charlie")
    }
    assert seen == {"stella": [a.pk, b.pk, state.pk], "alice": [a.pk], "bob": [], "charlie": [b.pk]}
    one = api(client, cast.alice, "get", f"/api/v1/webhooks/{a.pk}/")
    assert one.status_code == 200 and a.secret not in one.content.decode()
    assert api(client, cast.alice, "get", f"/api/v1/webhooks/{b.pk}/").status_code == 404
    assert api(client, cast.alice, "delete", f"/api/v1/webhooks/{state.pk}/").status_code == 404
    client.force_login(cast.alice)
    page = client.get(f"/admin/notify/webhook/{a.pk}/change/")
    assert page.status_code == 200 and a.secret not in page.content.decode()
    assert client.get(f"/admin/notify/webhook/{b.pk}/change/").status_code == 404
    client.force_login(cast.bob)
    assert client.get("/admin/notify/webhook/").status_code == 403


@COMMITTED
def test_it_switches_a_webhook_off_by_the_api_and_posts_it_nothing_then(client, cast, queue):
    with Receiver() as receiver:
        hook = Webhook.objects.create(district=cast.district, url=receiver.url, names=[FINISHED])
        url = f"/api/v1/webhooks/{hook.pk}/"
        assert api(client, cast.charlie, "patch", url, {"active": False}).status_code == 404
        assert api(client, cast.alice, "patch", url, {"names": ["Nope"]}).status_code == 400
        off = api(client, cast.alice, "patch", url, {"active": False})
        assert off.status_code == 200 and off.json()["active"] is False
        add(cast.district, "District", 1)
        resync(cast.district, cast.alice)
        run_queue()
    hook.refresh_from_db()
    assert (hook.active, hook.names, receiver.posts) == (False, [FINISHED], [])
    assert not Delivery.objects.exists()


def test_it_shows_the_secret_once_when_made_in_the_admin(client, cast):
    client.force_login(cast.alice)
    made = client.post(
        "/admin/notify/webhook/add/",
        {"district": cast.district.pk, "url": "https://example.org/in", "names": [FINISHED], "active": "on"},
        follow=True,
    )
    hook = Webhook.objects.get()
    assert hook.secret in made.content.decode() and hook.created_by == cast.alice
    refused = client.post(
        "/admin/notify/webhook/add/",
        {"district": cast.other.pk, "url": "https://example.org/in", "names": [FINISHED]},
    )
    assert refused.status_code == 200 and Webhook.objects.count() == 1


def test_it_lists_webhooks_and_deliveries_in_few_queries(client, cast, django_assert_max_num_queries):
    for i in range(20):
        hook = Webhook.objects.create(district=cast.district, url=f"http://127.0.0.1:9/{i}", names=[FINISHED])
        Delivery.objects.create(webhook=hook, event=FINISHED, key="k", attempt=1, status_code=500)
    client.force_login(cast.alice)
    # Counted at 5 rows and at 20 alike: the rights are asked once per page, not per row.
    for url, most in (("/admin/notify/webhook/", 14), ("/admin/notify/delivery/", 17)):
        with django_assert_max_num_queries(most):
            assert client.get(url).status_code == 200
