"""Process Alerts over the API: your own inbox only, marked read one by one or all at once."""

import pytest

from alerts.models import ProcessAlert
from resync.models import ResyncRequest

from .conftest import BOTH, add
from .test_api_resync import auth, post

pytestmark = pytest.mark.django_db(databases=BOTH)


@pytest.fixture
def alerted(client, cast, queue):
    """A state request to district A: stella, alice and bob are alerted."""
    add(cast.district, "Enrollment", 1, {"PersonIdentity": 1})  # something to move: the request stays running
    response = post(
        client, cast.stella, "/api/v1/state-requests/", {"districts": ["101"], "objects": ["Enrollment"]}
    )
    assert response.status_code == 201
    return ResyncRequest.objects.get()


def test_it_lists_your_alerts_without_the_state_requests_id(client, cast, alerted):
    alice = client.get("/api/v1/alerts/", headers=auth(cast.alice)).json()["results"]
    assert [(a["name"], a["district"], a["request"], a["read_at"]) for a in alice] == [
        ("State Resync Requested", "101", None, None)
    ]
    assert "Enrollment" not in alice[0]["message"]
    stella = client.get("/api/v1/alerts/", headers=auth(cast.stella)).json()["results"]
    assert [a["request"] for a in stella] == [alerted.pk]
    assert client.get("/api/v1/alerts/", headers=auth(cast.charlie)).json()["count"] == 0


def test_it_marks_one_alert_read_and_only_your_own(client, cast, alerted):
    mine = ProcessAlert.objects.get(user=cast.alice)
    bobs = ProcessAlert.objects.get(user=cast.bob)
    response = client.post(f"/api/v1/alerts/{mine.pk}/read/", headers=auth(cast.alice))
    assert response.status_code == 200 and response.json()["read_at"]
    mine.refresh_from_db()
    assert mine.read_at is not None
    assert client.post(f"/api/v1/alerts/{bobs.pk}/read/", headers=auth(cast.alice)).status_code == 404
    bobs.refresh_from_db()
    assert bobs.read_at is None
    unread = client.get("/api/v1/alerts/", {"unread": "true"}, headers=auth(cast.alice)).json()
    assert unread["count"] == 0


def test_it_marks_all_your_alerts_read(client, cast, alerted):
    ProcessAlert.objects.notify([cast.bob], name="Resync Finished", category="c", message="m")
    response = client.post("/api/v1/alerts/read/", headers=auth(cast.bob))
    assert response.json() == {"marked": 2}
    assert not ProcessAlert.objects.filter(user=cast.bob).unread().exists()
    assert ProcessAlert.objects.filter(user=cast.alice).unread().count() == 1  # alice's untouched
    assert client.post("/api/v1/alerts/read/", headers=auth(cast.bob)).json() == {"marked": 0}
