"""The Verification Summary's API: run, results, differences, one-click resync; outsiders."""

import pytest
from rest_framework.authtoken.models import Token

from resync.models import ResyncRequest
from tool import actions
from verification.models import VerificationRun, VerificationSetting

from .conftest import BOTH, add, chain, run_queue

# Transactional: the verifications and resyncs here are run by a worker, and RQ enqueues a job on commit.
pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)

API = "/api/v1/verifications/"


def auth(user) -> dict:
    return {"authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"}


def post(client, user, url, body=None):
    return client.post(url, body or {}, content_type="application/json", headers=auth(user))


@pytest.fixture
def drifted(tool_cast, queue):
    """District A fully resynced, then two new enrollments and a state-excluded calendar."""
    chain(tool_cast.district)
    actions.do_request_resync(actions.check_resync(tool_cast.district, None, None, False))
    run_queue()
    add(tool_cast.district, "Enrollment", 1, {"PersonIdentity": 1})
    add(tool_cast.district, "Enrollment", 2, {"PersonIdentity": 1})
    add(tool_cast.district, "Calendar", 2, {"School": 1}, excluded=True)
    return tool_cast


def test_it_runs_reports_drills_down_and_resyncs(client, drifted):
    alice = drifted.alice
    response = post(client, alice, API, {"district": "101", "objects": ["enrollment", "Calendar"]})
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["status"], created["objects"], created["results"]) == (
        "queued",
        ["Calendar", "Enrollment"],
        [],
    )
    run_queue()
    run = client.get(f"{API}{created['id']}/", headers=auth(alice)).json()
    assert (run["status"], run["objects_done"], run["to_resync"], run["not_allowed"]) == ("finished", 2, 2, 1)
    by_object = {r["object"]: r for r in run["results"]}
    assert by_object["Enrollment"] | {"object": None} == {
        "object": None,
        "only_district": 2,
        "only_state": 0,
        "different": 0,
        "to_resync": 2,
        "not_allowed": 0,
        "matching": 0,
        "truncated": False,
    }
    assert (by_object["Calendar"]["not_allowed"], by_object["Calendar"]["matching"]) == (1, 1)
    rows = client.get(f"{API}{run['id']}/differences/", {"kind": "only_district"}, headers=auth(alice)).json()
    assert [(r["object"], r["record_id"]) for r in rows["results"]] == [("Enrollment", 1), ("Enrollment", 2)]
    refused = client.get(f"{API}{run['id']}/differences/", {"object": "Calendar"}, headers=auth(alice)).json()
    assert [(r["kind"], r["reason"]) for r in refused["results"]] == [("not_allowed", "state_excluded")]
    bad = client.get(f"{API}{run['id']}/differences/", {"kind": "nope"}, headers=auth(alice))
    assert bad.status_code == 400 and "kind" in bad.json()

    sent = post(client, alice, f"{API}{run['id']}/resync/")
    assert sent.status_code == 201, sent.content
    request = sent.json()
    assert (request["objects"], request["check_dependencies"], request["level"]) == (
        ["Enrollment"],
        True,
        "district",
    )
    assert [s["object"] for s in request["steps"]][-1] == "Enrollment" and len(request["steps"]) == 6
    assert VerificationRun.objects.get(pk=run["id"]).resync_request_id == request["id"]
    run_queue()
    again = post(client, alice, API, {"district": "101", "objects": ["Enrollment"]}).json()
    run_queue()
    assert client.get(f"{API}{again['id']}/", headers=auth(alice)).json()["to_resync"] == 0
    listed = client.get(API, {"district": "101"}, headers=auth(alice)).json()
    assert [r["id"] for r in listed["results"]] == [again["id"], run["id"]]


def test_it_names_bad_input(client, drifted):
    alice = drifted.alice
    for body, answer in [
        (
            {"district": "101", "year": 2020},
            {"year": ["School year 2020 is not configured for district 101: choose 2027, 2028."]},
        ),
        ({"district": "101", "objects": ["Nope"]}, {"objects": ["Unknown sync object(s): Nope."]}),
        ({"district": "999"}, {"district": ["No district '999' among those you may resync."]}),
        ({}, {"district": ["This field is required."]}),
    ]:
        response = post(client, alice, API, body)
        assert (response.status_code, response.json()) == (400, answer), body
    assert not VerificationRun.objects.exists()


def test_it_keeps_the_api_from_outsiders(client, drifted):
    run = post(client, drifted.alice, API, {"district": "101", "objects": ["Enrollment"]}).json()
    run_queue()
    urls = [API, f"{API}{run['id']}/", f"{API}{run['id']}/differences/"]
    for url in urls:
        assert client.get(url).status_code == 401, url
    assert client.post(API, {"district": "101"}, content_type="application/json").status_code == 401
    assert client.post(f"{API}{run['id']}/resync/").status_code == 401
    bob = drifted.bob  # may resync district A, but holds no verification right
    for url in urls:
        assert client.get(url, headers=auth(bob)).status_code == 403, url
    assert post(client, bob, API, {"district": "101"}).status_code == 403
    assert post(client, bob, f"{API}{run['id']}/resync/").status_code == 403
    charlie = drifted.charlie
    assert client.get(API, headers=auth(charlie)).json()["results"] == []
    assert client.get(f"{API}{run['id']}/", headers=auth(charlie)).status_code == 404
    assert client.get(f"{API}{run['id']}/differences/", headers=auth(charlie)).status_code == 404
    assert post(client, charlie, f"{API}{run['id']}/resync/").status_code == 404
    assert post(client, charlie, API, {"district": "101"}).status_code == 400  # reads as absent
    assert ResyncRequest.objects.count() == 1 and VerificationRun.objects.count() == 1


def test_it_answers_403_naming_the_states_switch(client, drifted):
    VerificationSetting.objects.update_or_create(pk=1, defaults={"district_initiated": False})
    response = post(client, drifted.alice, API, {"district": "101"})
    assert response.status_code == 403
    assert response.json() == {"detail": "The state has switched district-initiated verification off."}
    assert post(client, drifted.stella, API, {"district": "101", "objects": ["District"]}).status_code == 201


def test_it_keeps_the_states_runs_and_its_resyncs_from_the_district(client, drifted):
    alice, stella = drifted.alice, drifted.stella
    own = post(client, alice, API, {"district": "101", "objects": ["Enrollment"]}).json()
    state_run = post(client, stella, API, {"district": "101", "objects": ["Enrollment"]}).json()
    assert (own["level"], state_run["level"]) == ("district", "state")
    run_queue()
    sent = post(client, stella, f"{API}{own['id']}/resync/").json()  # the state resyncs the district's run
    assert sent["level"] == "state"
    seen = client.get(f"{API}{own['id']}/", headers=auth(stella)).json()
    assert seen["resync_request"] == sent["id"]
    assert client.get(f"{API}{own['id']}/", headers=auth(alice)).json()["resync_request"] is None
    for url in (f"{API}{state_run['id']}/", f"{API}{state_run['id']}/differences/"):
        assert client.get(url, headers=auth(alice)).status_code == 404, url
        assert client.get(url, headers=auth(stella)).status_code == 200, url
    assert post(client, alice, f"{API}{state_run['id']}/resync/").status_code == 404
    listed = client.get(API, headers=auth(alice)).json()["results"]
    assert [(r["id"], r["level"], r["resync_request"]) for r in listed] == [(own["id"], "district", None)]
    assert client.get(API, {"level": "state"}, headers=auth(alice)).json()["results"] == []
    both = client.get(API, headers=auth(stella)).json()["results"]
    assert [r["id"] for r in both] == [state_run["id"], own["id"]]
    assert client.get(API, {"level": "nope"}, headers=auth(stella)).status_code == 400


def test_it_answers_a_user_who_may_send_state_requests_but_not_see_them(client, drifted):
    """State W without state R (a misconfigured account; the ready-made groups hold both):
    what such a user sends must be something they may see, not a 500 on their own answer."""
    from django.contrib.auth.models import User
    from guardian.shortcuts import assign_perm

    from resync import rights
    from selective.rights import SELECTIVE_USE, SELECTIVE_VIEW
    from verification.rights import VERIFY_RUN, VERIFY_VIEW

    walt = User.objects.create_user("walt", "walt@example.org", "pw", is_staff=True)
    for perm in (rights.DISTRICT, rights.OBJECT, rights.STATE_SEND, VERIFY_VIEW, VERIFY_RUN):
        assign_perm(perm, walt)
    for perm in (SELECTIVE_VIEW, SELECTIVE_USE):
        assign_perm(perm, walt)
    created = post(client, walt, API, {"district": "101", "objects": ["Enrollment"]})
    assert created.status_code == 201, created.content
    run_queue()
    run = client.get(f"{API}{created.json()['id']}/", headers=auth(walt))
    assert run.status_code == 200 and run.json()["level"] == "district"
    sent = post(client, walt, f"{API}{run.json()['id']}/resync/")
    assert sent.status_code == 201, sent.content
    assert client.get(f"/api/v1/requests/{sent.json()['id']}/", headers=auth(walt)).status_code == 200
    body = {"district": "101", "object": "PersonIdentity", "records": [1]}
    selective = post(client, walt, "/api/v1/selective-syncs/", body)
    assert selective.status_code == 201, selective.content
