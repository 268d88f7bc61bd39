"""Cancelling a waiting resync request (issue 14, item 4): who may, at every door
(admin page and action, API, resync_cancel), what is kept, and what runs next."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token

from alerts.models import ProcessAlert
from history.models import DISBatchHistory, StepStatus
from resync.models import ResyncRequest
from tool import actions

from .conftest import BOTH, COMMITTED, add, run_queue

pytestmark = pytest.mark.django_db(databases=BOTH)


def send(district, user, objects=("District",), level=ResyncRequest.Level.DISTRICT):
    checked = actions.check_resync(district, None, list(objects), False, user=user, level=level)
    req = actions.do_request_resync(checked)
    # Not a double click: an earlier send, so the same send may follow.
    ResyncRequest.objects.filter(pk=req.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    return req


@pytest.fixture
def busy(cast, queue):
    """District A runs alice's request; a second of alice's and a state request wait."""
    add(cast.district, "District", 1)
    add(cast.district, "PersonIdentity", 1, {"District": 1})
    running = send(cast.district, cast.alice)
    waiting = send(cast.district, cast.alice, ("District", "PersonIdentity"))
    state = send(cast.district, cast.stella, level=ResyncRequest.Level.STATE)
    return running, waiting, state


def api(client, user, url):
    token = Token.objects.get_or_create(user=user)[0].key
    return client.post(url, headers={"authorization": f"Token {token}"}, content_type="application/json")


def test_it_cancels_a_waiting_request_keeping_who_and_when(client, cast, busy):
    _running, waiting, _state = busy
    assert waiting.status == ResyncRequest.Status.WAITING
    response = api(client, cast.alice, f"/api/v1/requests/{waiting.pk}/cancel/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["cancelled_by"], body["steps"]) == ("cancelled", "alice", [])
    waiting.refresh_from_db()
    assert waiting.status == ResyncRequest.Status.CANCELLED
    assert waiting.cancelled_by == cast.alice and waiting.cancelled_at is not None
    assert waiting.objects_asked == ["District", "PersonIdentity"]  # what it asked is kept
    assert not DISBatchHistory.objects.filter(request=waiting).exists()


def test_it_refuses_to_cancel_a_running_request(client, cast, busy):
    running, _waiting, _state = busy
    response = api(client, cast.alice, f"/api/v1/requests/{running.pk}/cancel/")
    assert response.status_code == 400
    assert "only a waiting request" in response.content.decode()
    running.refresh_from_db()
    assert running.status == ResyncRequest.Status.RUNNING


def test_it_hides_a_state_request_from_the_district(client, cast, busy):
    *_, state = busy
    assert api(client, cast.alice, f"/api/v1/requests/{state.pk}/cancel/").status_code == 404
    assert api(client, cast.alice, f"/api/v1/state-requests/{state.pk}/cancel/").status_code == 403
    state.refresh_from_db()
    assert state.status == ResyncRequest.Status.WAITING


def test_it_lets_the_state_cancel_any_waiting_request_and_tells_the_requester(client, cast, busy):
    _running, waiting, state = busy
    assert api(client, cast.stella, f"/api/v1/state-requests/{state.pk}/cancel/").status_code == 200
    assert api(client, cast.stella, f"/api/v1/requests/{waiting.pk}/cancel/").status_code == 200
    alert = ProcessAlert.objects.filter(user=cast.alice, request=waiting).get()
    assert "was cancelled by stella before it started" in alert.message
    assert alert.link == f"/admin/resync/resyncrequest/{waiting.pk}/change/"


def test_it_refuses_a_district_user_without_the_requests_objects(client, cast, busy):
    _running, waiting, _state = busy
    response = api(client, cast.bob, f"/api/v1/requests/{waiting.pk}/cancel/")
    assert response.status_code == 403
    assert "you have none for District" in response.json()["detail"]


@COMMITTED  # a worker runs the jobs: they are enqueued on commit
def test_it_runs_the_next_waiting_request_and_never_the_cancelled_one(cast, busy):
    running, waiting, state = busy
    actions.do_cancel(waiting, cast.alice)
    run_queue()  # the running one ends, and the next waiting one (the state's) starts and runs
    running.refresh_from_db()
    state.refresh_from_db()
    waiting.refresh_from_db()
    assert running.status == state.status == ResyncRequest.Status.FINISHED
    assert waiting.status == ResyncRequest.Status.CANCELLED and waiting.started_at is None


def test_it_frees_the_district_when_the_cancelled_one_waited_alone(cast, busy):
    # A lost wake-up: two waiting with nothing running. Cancelling the first starts the next.
    running, waiting, state = busy
    ResyncRequest.objects.filter(pk=running.pk).update(status=ResyncRequest.Status.FINISHED)
    actions.do_cancel(waiting, cast.stella)
    state.refresh_from_db()
    assert state.status == ResyncRequest.Status.RUNNING


def test_it_lets_a_request_that_started_meanwhile_run(cast, busy):
    # check_cancel passed on a stale copy; do_cancel checks again under the district's lock.
    _running, waiting, _state = busy
    stale = ResyncRequest.objects.get(pk=waiting.pk)
    ResyncRequest.objects.filter(pk=waiting.pk).update(status=ResyncRequest.Status.RUNNING)
    with pytest.raises(actions.ResyncError, match="only a waiting request"):
        actions.do_cancel(stale, cast.alice)
    assert DISBatchHistory.objects.filter(request=waiting, status=StepStatus.PENDING).count() == 2


def test_it_lets_no_worker_run_a_cancelled_requests_step(cast, busy):
    from runner import lifecycle

    _running, waiting, _state = busy
    step = DISBatchHistory.objects.filter(request=waiting).values_list("pk", flat=True).first()
    actions.do_cancel(waiting, cast.alice)
    lifecycle.run_step(step)  # a job for it (lost and found again) finds nothing to run
    assert not DISBatchHistory.objects.filter(pk=step).exists()
    assert ResyncRequest.objects.get(pk=waiting.pk).status == ResyncRequest.Status.CANCELLED


def test_it_lets_the_same_send_follow_a_cancelled_one(cast, busy):
    _running, waiting, _state = busy
    ResyncRequest.objects.filter(pk=waiting.pk).update(created_at=timezone.now())
    actions.do_cancel(waiting, cast.alice)
    again = actions.check_resync(cast.district, None, ["District", "PersonIdentity"], False, user=cast.alice)
    assert actions.do_request_resync(again).status == ResyncRequest.Status.WAITING


def test_it_cancels_from_the_admin_page_after_asking(client, cast, busy, django_assert_max_num_queries):
    _running, waiting, _state = busy
    client.force_login(cast.alice)
    page = f"/admin/resync/resyncrequest/{waiting.pk}/change/"
    with django_assert_max_num_queries(25):
        response = client.get(page)
    assert 'id="cancel-request"' in response.content.decode()
    url = f"/admin/resync/resyncrequest/{waiting.pk}/cancel/"
    with django_assert_max_num_queries(20):
        asked = client.get(url)
    text = asked.content.decode()
    assert "none of its 2 steps will run (District, PersonIdentity)" in text
    assert ResyncRequest.objects.get(pk=waiting.pk).status == ResyncRequest.Status.WAITING
    done = client.post(url)
    assert (done.status_code, done["Location"]) == (303, page)
    assert ResyncRequest.objects.get(pk=waiting.pk).status == ResyncRequest.Status.CANCELLED
    after = client.get(page).content.decode()
    assert "by alice at" in after and "none of its steps ran" in after
    assert 'id="cancel-request"' not in after


def test_it_says_why_the_admin_refuses(client, cast, busy):
    running, _waiting, state = busy
    client.force_login(cast.alice)
    response = client.post(f"/admin/resync/resyncrequest/{running.pk}/cancel/")
    assert response.status_code == 400
    assert "only a waiting request" in response.content.decode()
    assert client.post(f"/admin/resync/resyncrequest/{state.pk}/cancel/").status_code == 404
    client.force_login(cast.charlie)
    assert client.get(f"/admin/resync/resyncrequest/{running.pk}/cancel/").status_code == 404


def test_it_cancels_by_the_admin_action(client, cast, busy):
    running, waiting, state = busy
    client.force_login(cast.stella)
    client.post(
        "/admin/resync/resyncrequest/",
        {"action": "cancel_waiting", "_selected_action": [running.pk, waiting.pk, state.pk]},
    )
    statuses = dict(ResyncRequest.objects.values_list("pk", "status"))
    assert statuses == {running.pk: "running", waiting.pk: "cancelled", state.pk: "cancelled"}


def test_it_cancels_by_the_command(cast, busy, capsys):
    running, waiting, state = busy
    with pytest.raises(CommandError, match=f"No resync request {state.pk} that alice may see"):
        call_command("resync_cancel", str(state.pk), "--user", "alice")
    with pytest.raises(CommandError, match="only a waiting request"):
        call_command("resync_cancel", str(running.pk))
    with pytest.raises(CommandError, match="not a request id"):
        call_command("resync_cancel", "１")
    call_command("resync_cancel", str(waiting.pk))
    assert "Cancelled request" in capsys.readouterr().out
    waiting.refresh_from_db()
    assert (waiting.status, waiting.cancelled_by) == ("cancelled", None)
