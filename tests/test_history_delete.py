"""History D deletes the history of finished requests only: a request waits for its
unfinished steps, so deleting one would wedge it and every later request of its district."""

import pytest

from history.models import DISBatchHistory, StepStatus
from resync.models import ResyncRequest
from tool import actions

from .conftest import BOTH, COMMITTED, chain, run_queue

pytestmark = pytest.mark.django_db(databases=BOTH)
# COMMITTED: the tests whose requests a worker runs (run_queue).

LIST = "/admin/history/disbatchhistory/"


def bulk_delete(client, steps):
    return client.post(
        LIST, {"action": "delete_selected", "_selected_action": [s.pk for s in steps], "post": "yes"}
    )


@COMMITTED
def test_it_refuses_to_delete_a_queued_or_pending_step(client, cast, queue):
    chain(cast.district)
    request = actions.do_request_resync(
        actions.check_resync(cast.district, None, None, False, user=cast.alice)
    )
    queued = DISBatchHistory.objects.filter(request=request, status=StepStatus.QUEUED).first()
    pending = DISBatchHistory.objects.filter(request=request, status=StepStatus.PENDING).first()
    client.force_login(cast.alice)  # holds history D
    for step in (queued, pending):
        assert client.get(f"{LIST}{step.pk}/delete/").status_code == 403
        assert client.post(f"{LIST}{step.pk}/delete/", {"post": "yes"}).status_code == 403
    confirm = client.post(LIST, {"action": "delete_selected", "_selected_action": [queued.pk, pending.pk]})
    assert "not finished" in confirm.content.decode() and 'name="post"' not in confirm.content.decode()
    bulk_delete(client, [queued, pending])
    assert DISBatchHistory.objects.filter(pk__in=[queued.pk, pending.pk]).count() == 2
    run_queue()  # the request was not wedged: it finishes
    request.refresh_from_db()
    assert request.status == ResyncRequest.Status.FINISHED and request.outcome == "green"


def test_it_refuses_to_delete_a_finished_step_of_a_running_request(client, cast, queue):
    chain(cast.district)
    request = actions.do_request_resync(
        actions.check_resync(cast.district, None, None, False, user=cast.alice)
    )
    # The first layer done, as a worker leaves it; the request goes on with the next.
    DISBatchHistory.objects.filter(request=request, status=StepStatus.QUEUED).update(status=StepStatus.GREEN)
    done = DISBatchHistory.objects.filter(request=request, status=StepStatus.GREEN).first()
    client.force_login(cast.alice)
    assert client.post(f"{LIST}{done.pk}/delete/", {"post": "yes"}).status_code == 403
    assert DISBatchHistory.objects.filter(pk=done.pk).exists()


@COMMITTED
def test_it_deletes_a_finished_requests_history(client, cast, queue):
    chain(cast.district)
    request = actions.do_request_resync(
        actions.check_resync(cast.district, None, ["District"], False, user=cast.alice)
    )
    run_queue()
    step = DISBatchHistory.objects.get(request=request)
    client.force_login(cast.alice)
    assert client.get(f"{LIST}{step.pk}/delete/").status_code == 200
    bulk_delete(client, [step])
    assert not DISBatchHistory.objects.filter(pk=step.pk).exists()


def test_it_lets_nobody_delete_a_request(client, cast, superuser, queue):
    chain(cast.district)
    request = actions.do_request_resync(
        actions.check_resync(cast.district, None, None, False, user=cast.alice)
    )
    client.force_login(superuser)
    assert (
        client.post(f"/admin/resync/resyncrequest/{request.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert ResyncRequest.objects.filter(pk=request.pk).exists()
