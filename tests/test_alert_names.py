"""Alert names of their own (issue 15): a scheduled occurrence refused at send time tells
its owner why (inbox, email, webhook) with a link checked against the schedule's rights;
a cancelled request is Resync Cancelled, not Resync Finished; and a state request's
district still hears only its State Resync Requested, naming no object."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from guardian.shortcuts import remove_perm
from rest_framework.authtoken.models import Token

from alerts.models import AlertName, ProcessAlert
from notify import signing
from notify.models import Webhook
from resync import rights
from resync.models import SyncObject
from schedules import actions as schedules
from schedules.actions import refused_message

from .conftest import BOTH, COMMITTED, add, run_queue
from .test_cancel import send
from .test_notify import Receiver
from .test_schedules import make

pytestmark = pytest.mark.django_db(databases=BOTH)

REFUSED = AlertName.SCHEDULED_RESYNC_REFUSED.value
CANCELLED = AlertName.RESYNC_CANCELLED.value
ASKED = AlertName.STATE_RESYNC_REQUESTED.value


def api(client, user, method: str, url: str, body=None):
    token = Token.objects.get_or_create(user=user)[0].key
    kwargs = {"content_type": "application/json"} if body is not None else {}
    return getattr(client, method)(url, body, headers={"authorization": f"Token {token}"}, **kwargs)


@pytest.fixture
def loopback(settings):
    """Webhooks to the loopback receivers below are allowed (they are tests' servers)."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.NOTIFY_RETRY_INTERVALS = [0]


def events(receiver: Receiver) -> list[str]:
    return [h[signing.EVENT_HEADER.lower()] for h, _b in receiver.posts]


def test_it_cuts_a_long_refusal_to_what_an_alert_holds():
    refused = [f"{n}: You have no right to resync district {n}." for n in range(100, 170)]
    text = refused_message("Nightly", "3 Dec 2026 02:00 CST", refused, most=500)
    assert len(text) == 500 and text.endswith("…")
    assert text.startswith("Schedule 'Nightly', due 3 Dec 2026 02:00 CST: refused for 100: You have no")
    assert refused_message("N", "t", ["101: No."]) == "Schedule 'N', due t: refused for 101: No."


@COMMITTED
def test_it_tells_the_owner_of_a_refused_occurrence_by_inbox_email_and_webhook(
    client, cast, queue, mailoutbox, settings, loopback
):
    settings.SCHEDULES_FOR_DISTRICTS = True
    cast.alice.email = "alice@example.org"
    cast.alice.save()
    # The new name is one to choose, as every alert name is.
    assert api(client, cast.alice, "put", "/api/v1/notifications/", {"names": [REFUSED]}).status_code == 200
    schedule = make(cast.alice)
    with Receiver() as theirs:
        Webhook.objects.create(district=cast.district, url=theirs.url, names=[REFUSED])
        remove_perm(rights.DISTRICT, cast.alice, cast.district)  # the owner lost the right
        (fired,) = schedules.tick()
        run_queue()
    assert fired.requests == []
    alert = ProcessAlert.objects.get(user=cast.alice)
    assert (alert.name, alert.district, alert.request) == (REFUSED, cast.district, None)
    assert "refused for 101: You have no right to resync district 101." in alert.message
    assert alert.link == f"/admin/schedules/schedule/{schedule.pk}/change/"
    (mail,) = mailoutbox
    assert mail.subject == f"[StateSync] {REFUSED}" and alert.message in mail.body
    assert events(theirs) == [REFUSED]
    assert json.loads(theirs.posts[0][1])["message"] == alert.message
    # The link is checked when shown: the schedule is no longer hers to open.
    (shown,) = api(client, cast.alice, "get", "/api/v1/alerts/").json()["results"]
    assert (shown["name"], shown["link"]) == (REFUSED, "")


@COMMITTED
@pytest.mark.parametrize("whole_state", [True, False], ids=["every district", "one district"])
def test_it_tells_the_state_of_its_schedules_refusal_and_the_district_nothing(
    client, cast, queue, loopback, whole_state
):
    # A state administrator's schedule is the state's, of one district as of all of them.
    schedule = make(cast.stella, **({"state": cast.district.state} if whole_state else {}))
    with Receiver() as theirs, Receiver() as state:
        Webhook.objects.create(district=cast.district, url=theirs.url, names=[REFUSED, ASKED])
        Webhook.objects.create(district=None, url=state.url, names=[REFUSED, ASKED])
        SyncObject.objects.filter(name="District").update(enabled=False)  # no longer offered
        (fired,) = schedules.tick()
        run_queue()
    assert fired.requests == []
    (alert,) = ProcessAlert.objects.all()  # one alert for the occurrence, to its owner alone
    assert (alert.user, alert.name, alert.district) == (cast.stella, REFUSED, None)
    assert "101: Not offered for district 101 in 2027: District." in alert.message
    assert ("202: Not offered" in alert.message) is whole_state
    # A state schedule's refusal names objects: the district's webhook hears none of it.
    assert theirs.posts == []
    assert events(state) == [REFUSED]
    (shown,) = api(client, cast.stella, "get", "/api/v1/alerts/").json()["results"]
    assert shown["link"] == f"/admin/schedules/schedule/{schedule.pk}/change/"


def test_it_sends_no_alert_when_every_district_is_sent(cast, queue):
    make(cast.stella)
    (fired,) = schedules.tick()
    assert len(fired.requests) == 1
    assert not ProcessAlert.objects.filter(name=REFUSED).exists()


def test_it_names_a_cancelled_request_resync_cancelled(client, cast, queue):
    add(cast.district, "District", 1)
    send(cast.district, cast.alice)  # running: the next one waits
    waiting = send(cast.district, cast.alice, ("District",))
    assert api(client, cast.stella, "post", f"/api/v1/requests/{waiting.pk}/cancel/").status_code == 200
    alert = ProcessAlert.objects.get(user=cast.alice, request=waiting)
    assert alert.name == CANCELLED
    assert not ProcessAlert.objects.filter(name=AlertName.RESYNC_FINISHED).exists()


@COMMITTED
def test_it_tells_a_district_of_a_cancelled_state_request_only_that_it_was_asked(
    client, cast, queue, loopback
):
    add(cast.district, "District", 1)
    add(cast.district, "PersonIdentity", 1, {"District": 1})
    with Receiver() as theirs, Receiver() as state:
        Webhook.objects.create(district=cast.district, url=theirs.url, names=[CANCELLED, ASKED])
        Webhook.objects.create(district=None, url=state.url, names=[CANCELLED, ASKED])
        send(cast.district, cast.alice)  # running
        asked = send(cast.district, cast.stella, ("PersonIdentity",), level="state")
        call_command("resync_cancel", str(asked.pk), stdout=io.StringIO())  # an operator's
        run_queue()
    cancelled = ProcessAlert.objects.get(request=asked, name=CANCELLED)
    assert cancelled.user == cast.stella  # the requester, a state user: nobody at the district
    district_alerts = ProcessAlert.objects.filter(user__in=[cast.alice, cast.bob], request=asked)
    assert set(district_alerts.values_list("name", flat=True)) == {ASKED}
    assert not [a for a in district_alerts if "PersonIdentity" in a.message]
    assert events(theirs) == [ASKED]
    assert "PersonIdentity" not in theirs.posts[0][1].decode()
    assert sorted(events(state)) == sorted([ASKED, CANCELLED])
