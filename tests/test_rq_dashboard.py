"""RQ's dashboard is the state operators' alone: a district user neither sees a state
request's jobs nor deletes them nor empties the queue (404, as for anything they may
not know of), while a state administrator keeps every page."""

import pytest
from django.test import override_settings
from rq.job import Job

from history.models import DISBatchHistory
from resync.models import ResyncRequest
from runner import lifecycle
from tool import actions

from .conftest import BOTH, COMMITTED, add
from .test_rights_matrix import ACTORS, knock, outcomes

pytestmark = pytest.mark.django_db(databases=BOTH)
# COMMITTED: the tests that read the jobs RQ enqueued (on commit).

BASE = "/admin/django_rq/dashboard/"
PAGES = [
    ("dashboard", "get", "", outcomes(200, 404, 404, 404, 302)),
    ("queue's jobs", "get", "queues/0/", outcomes(200, 404, 404, 404, 302)),
    ("a state step's job", "get", "queues/0/{job}/", outcomes(200, 404, 404, 404, 302)),
    ("workers", "get", "workers/0/", outcomes(200, 404, 404, 404, 302)),
    ("stats JSON", "get", "stats.json", outcomes(200, 404, 404, 404, 401)),
]


@pytest.fixture
def state_step_job(cast, queue) -> str:
    add(cast.district, "District", 1)
    checked = actions.check_resync(cast.district, None, ["District"], False, user=cast.stella, level="state")
    request = actions.do_request_resync(checked)
    step = DISBatchHistory.objects.get(request=request)
    job_id = lifecycle.step_job_id(step.pk)
    assert Job.exists(job_id, connection=queue.connection)
    return job_id


def users(cast) -> dict:
    return {
        "stella": cast.stella,
        "alice": cast.alice,
        "bob": cast.bob,
        "charlie": cast.charlie,
        "anon": None,
    }


@COMMITTED
@pytest.mark.parametrize("page, method, url, expected", PAGES, ids=[p[0] for p in PAGES])
def test_it_shows_rq_pages_to_state_users_only(client, cast, state_step_job, page, method, url, expected):
    got = {
        actor: knock(client, users(cast)[actor], method, BASE + url.format(job=state_step_job), None)
        for actor in ACTORS
    }
    assert got == expected


@COMMITTED
@pytest.mark.parametrize("actor", ["alice", "bob", "charlie"])
def test_it_lets_no_district_user_delete_a_job_or_empty_the_queue(client, cast, state_step_job, queue, actor):
    client.force_login(users(cast)[actor])
    for url in (f"queues/0/{state_step_job}/delete/", "queues/0/empty/", "queues/0/requeue-all/"):
        assert client.post(BASE + url, {"post": "yes"}).status_code == 404
    assert (
        client.post(BASE + "queues/actions/0/", {"action": "delete", "job_ids": [state_step_job]}).status_code
        == 404
    )
    assert Job.exists(state_step_job, connection=queue.connection)
    assert queue.count == 1
    # The state's request still runs as sent.
    assert ResyncRequest.objects.get().status == ResyncRequest.Status.RUNNING


def test_it_logs_who_was_refused_at_the_rq_dashboard(client, cast, caplog):
    client.force_login(cast.charlie)
    with caplog.at_level("WARNING", logger="statesync.refusals"):
        client.get(BASE + "queues/0/")
    assert "refused charlie at admin: RQ dashboard /admin/django_rq/dashboard/queues/0/" in caplog.text


@override_settings(RQ_API_TOKEN="monitor-token")
def test_it_lets_a_monitor_with_the_rq_token_read_the_stats(client, cast):
    assert client.get(BASE + "stats.json").status_code == 401
    assert client.get(BASE + "stats.json", headers={"authorization": "Bearer wrong"}).status_code == 401
    answer = client.get(BASE + "stats.json", headers={"authorization": "Bearer monitor-token"})
    assert answer.status_code == 200 and "queues" in answer.json()


def test_it_lists_rq_on_the_admin_index_for_state_users_only(client, cast):
    client.force_login(cast.stella)
    assert BASE in client.get("/admin/").content.decode()
    client.force_login(cast.alice)
    assert BASE not in client.get("/admin/").content.decode()
