"""The resync API: catalog, districts, plan preview, resync requests and state requests."""

import pytest
from django.contrib.auth.models import User
from guardian.shortcuts import assign_perm
from rest_framework.authtoken.models import Token

from history.models import DISBatchHistory
from resync import planner, rights
from resync.catalog import CATALOG
from resync.models import ResyncRequest, SyncObject

from .conftest import BOTH, COMMITTED, chain, run_queue

pytestmark = pytest.mark.django_db(databases=BOTH)
# COMMITTED: the tests whose requests a worker runs (run_queue).


def auth(user) -> dict:
    return {"authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"}


def post(client, user, url, body):
    return client.post(url, body, content_type="application/json", headers=auth(user))


def test_it_lists_the_catalog_with_parents_children_and_your_tool_rights(client, cast):
    body = client.get("/api/v1/sync-objects/", headers=auth(cast.bob)).json()
    by_name = {o["name"]: o for o in body["results"]}
    assert body["count"] == len(CATALOG) == len(by_name)
    parents = SyncObject.objects.parents_map()
    enrollment = by_name["Enrollment"]
    assert sorted(enrollment["parents"]) == sorted(parents["Enrollment"])
    assert enrollment["ancestors"] == planner.ancestor_order(parents, "Enrollment")
    assert {"District", "School", "Calendar"} <= set(enrollment["ancestors"])
    assert sorted(by_name["District"]["children"]) == sorted(
        n for n, ps in parents.items() if "District" in ps
    )
    allowed = {n for n, o in by_name.items() if o["may_resync"]}
    assert allowed == {"Enrollment", "PersonIdentity"}  # bob's two object rights
    one = client.get("/api/v1/sync-objects/Enrollment/", headers=auth(cast.alice)).json()
    assert one["may_resync"] is True and one["parents"] == enrollment["parents"]


def test_it_lists_only_the_districts_you_may_resync(client, cast):
    def codes(user):
        listed = client.get("/api/v1/districts/", headers=auth(user)).json()["results"]
        return [d["code"] for d in listed]

    assert codes(cast.stella) == ["101", "202"]
    assert codes(cast.alice) == codes(cast.bob) == ["101"]
    assert codes(cast.charlie) == ["202"]
    one = client.get("/api/v1/districts/101/", headers=auth(cast.alice)).json()
    assert one == {
        "code": "101",
        "name": "Adair County",
        "state": "KY",
        "scope_year": 2027,
        "years": [2027, 2028],
    }


def test_it_previews_the_same_plan_as_the_tool(client, cast):
    query = {"objects": ["Enrollment"], "check_dependencies": "true"}
    body = client.get("/api/v1/districts/101/plan/", query, headers=auth(cast.alice)).json()
    client.force_login(cast.alice)
    tool = client.get("/admin/resync/district/101/tool/plan/", {**query, "check_dependencies": "1"}).json()
    assert body["order"] == tool["order"] and body["added"] == tool["added"]
    assert body["order"][-1] == "Enrollment" and len(body["order"]) == 6
    assert [n for layer in body["layers"] for n in layer] == body["order"]
    assert (body["district"], body["year"]) == ("101", 2027)
    full = client.get(
        "/api/v1/districts/101/plan/", {"all": "true", "year": "2028"}, headers=auth(cast.alice)
    )
    offered = SyncObject.objects.offered(cast.district, 2028).count()
    assert full.status_code == 200 and len(full.json()["order"]) == offered


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({"district": "101", "objects": ["Nope"]}, "objects", "Unknown sync object(s): Nope."),
        (
            {"district": "101", "objects": []},
            "objects",
            "Select at least one sync object, or ask for a full resync.",
        ),
        ({"district": "101"}, "objects", "Select at least one sync object, or ask for a full resync."),
        (
            {"district": "101", "objects": ["District"], "all": True},
            "objects",
            "Give objects or all=true, not both.",
        ),
        (
            {"district": "101", "all": True, "year": 2020},
            "year",
            "School year 2020 is not configured for district 101: choose 2027, 2028.",
        ),
        ({"district": "101", "all": True, "year": "soon"}, "year", "A valid integer is required."),
        ({"district": "999", "all": True}, "district", "No district '999' among those you may resync."),
        ({"objects": ["District"]}, "district", "This field is required."),
        (
            {"district": "101", "objects": "District"},
            "objects",
            'Expected a list of items but got type "str".',
        ),
    ],
)
def test_it_names_the_field_of_bad_input(client, cast, body, field, message):
    response = post(client, cast.alice, "/api/v1/requests/", body)
    assert response.status_code == 400
    assert response.json() == {field: [message]}
    assert not ResyncRequest.objects.exists()


def test_it_refuses_malformed_json_and_a_body_that_is_not_an_object(client, cast):
    response = client.post(
        "/api/v1/requests/",
        '{"district": "101",',
        content_type="application/json",
        headers=auth(cast.alice),
    )
    assert response.status_code == 400 and response.json()["detail"].startswith("JSON parse error")
    response = post(client, cast.alice, "/api/v1/requests/", ["101"])
    assert response.status_code == 400 and "non_field_errors" in response.json()
    assert not ResyncRequest.objects.exists()


@COMMITTED
def test_it_sends_a_resync_and_shows_its_steps_and_live_counts(client, cast, queue):
    chain(cast.district)
    body = {"district": "101", "objects": ["personidentity"], "check_dependencies": True}
    response = post(client, cast.alice, "/api/v1/requests/", body)
    assert response.status_code == 201, response.content
    sent = response.json()
    request = ResyncRequest.objects.get()
    assert (sent["id"], sent["objects"], sent["level"], sent["requested_by"]) == (
        request.pk,
        ["PersonIdentity"],
        "district",
        "alice",
    )
    assert [s["object"] for s in sent["steps"]] == [
        "District",
        "School",
        "Calendar",
        "ScheduleStructure",
        "PersonIdentity",
    ]
    assert sent["totals"] == {"steps": 5, "finished": 0, "processed": 0, "errors": 0, "sent": 0}

    run_queue()
    done = client.get(f"/api/v1/requests/{request.pk}/", headers=auth(cast.alice)).json()
    assert (done["status"], done["outcome"]) == ("finished", "green")
    assert done["totals"] == {"steps": 5, "finished": 5, "processed": 5, "errors": 0, "sent": 5}
    assert {s["colour"] for s in done["steps"]} == {"green"}
    assert [s["layer"] for s in done["steps"]] == [0, 1, 2, 3, 4]


def test_it_sends_a_full_resync(client, cast, queue):
    response = post(client, cast.alice, "/api/v1/requests/", {"district": "101", "all": True, "year": 2028})
    assert response.status_code == 201
    request = ResyncRequest.objects.get()
    assert request.full and request.school_year == 2028
    assert (
        DISBatchHistory.objects.filter(request=request).count()
        == SyncObject.objects.offered(cast.district, 2028).count()
    )


def test_it_names_the_parents_a_user_may_not_resync(client, cast):
    body = {"district": "101", "objects": ["Enrollment"], "check_dependencies": True}
    response = post(client, cast.bob, "/api/v1/requests/", body)
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Check Dependencies needs parents you may not resync: District, School, Calendar, ScheduleStructure."
    }
    response = post(client, cast.bob, "/api/v1/requests/", {"district": "101", "objects": ["School"]})
    assert response.json() == {"detail": "You have no tool right to resync School."}
    assert not ResyncRequest.objects.exists()


def test_it_answers_another_districts_code_as_if_it_did_not_exist(client, cast):
    theirs = post(client, cast.charlie, "/api/v1/requests/", {"district": "101", "all": True})
    nowhere = post(client, cast.charlie, "/api/v1/requests/", {"district": "999", "all": True})
    assert theirs.status_code == nowhere.status_code == 400
    assert theirs.json()["district"] == [m.replace("999", "101") for m in nowhere.json()["district"]]
    assert (
        client.get("/api/v1/districts/101/plan/", {"all": "true"}, headers=auth(cast.charlie)).status_code
        == 404
    )
    assert not ResyncRequest.objects.exists()


def test_it_hides_another_districts_requests(client, cast, queue):
    post(client, cast.alice, "/api/v1/requests/", {"district": "101", "all": True})
    mine = ResyncRequest.objects.get()
    listed = client.get("/api/v1/requests/", headers=auth(cast.charlie)).json()
    assert listed["count"] == 0
    assert client.get(f"/api/v1/requests/{mine.pk}/", headers=auth(cast.charlie)).status_code == 404
    assert client.get(f"/api/v1/requests/{mine.pk}/", headers=auth(cast.bob)).status_code == 200


@COMMITTED
def test_it_hides_state_requests_and_their_steps_from_district_users(client, cast, queue):
    chain(cast.district)
    state = post(
        client,
        cast.stella,
        "/api/v1/state-requests/",
        {"districts": ["101"], "objects": ["PersonIdentity"], "check_dependencies": True},
    )
    assert state.status_code == 201
    post(client, cast.alice, "/api/v1/requests/", {"district": "101", "objects": ["District"]})
    run_queue()
    state_id, own_id = state.json()["requests"][0]["id"], ResyncRequest.objects.get(level="district").pk
    step = DISBatchHistory.objects.get(request_id=state_id, sync_object__name="PersonIdentity")

    for user in (cast.alice, cast.bob):
        listed = client.get("/api/v1/requests/", headers=auth(user)).json()["results"]
        assert [r["id"] for r in listed] == [own_id]
        assert client.get(f"/api/v1/requests/{state_id}/", headers=auth(user)).status_code == 404
        assert client.get("/api/v1/requests/", {"level": "state"}, headers=auth(user)).json()["count"] == 0
    history = client.get("/api/v1/history/", headers=auth(cast.alice)).json()["results"]
    assert [h["request"] for h in history] == [own_id]
    assert client.get(f"/api/v1/history/{step.pk}/", headers=auth(cast.alice)).status_code == 404
    assert "PersonIdentity" not in client.get("/api/v1/alerts/", headers=auth(cast.alice)).content.decode()

    seen = client.get("/api/v1/requests/", headers=auth(cast.stella)).json()["results"]
    assert sorted(r["id"] for r in seen) == sorted([state_id, own_id])
    assert client.get(f"/api/v1/history/{step.pk}/", headers=auth(cast.stella)).json()["colour"] == "green"


def test_it_sends_a_state_request_to_several_districts(client, cast, queue):
    body = {"districts": ["101", "202", "101"], "objects": ["District"]}
    response = post(client, cast.stella, "/api/v1/state-requests/", body)
    assert response.status_code == 201
    assert [(r["district"], r["level"], r["objects"]) for r in response.json()["requests"]] == [
        ("101", "state", ["District"]),
        ("202", "state", ["District"]),
    ]
    assert ResyncRequest.objects.filter(level="state").count() == 2
    listed = client.get("/api/v1/state-requests/", {"district": "202"}, headers=auth(cast.stella)).json()
    assert [r["district"] for r in listed["results"]] == ["202"]


def test_it_stores_no_state_request_when_one_district_refuses(client, cast):
    # 202 does not sync the next year: nothing is sent to 101 either.
    response = post(
        client,
        cast.stella,
        "/api/v1/state-requests/",
        {"districts": ["101", "202"], "all": True, "year": 2028},
    )
    assert response.status_code == 400
    assert response.json() == {
        "year": ["District 202: School year 2028 is not configured for district 202: choose 2027."]
    }
    response = post(
        client, cast.stella, "/api/v1/state-requests/", {"districts": ["101", "999"], "all": True}
    )
    assert response.json() == {"districts": ["No district '999' among those you may resync."]}
    response = post(client, cast.stella, "/api/v1/state-requests/", {"districts": [], "all": True})
    assert response.json() == {"districts": ["This list may not be empty."]}
    assert not ResyncRequest.objects.exists()


def test_it_needs_state_w_to_send_a_state_request(client, cast):
    viewer = User.objects.create_user("vera")
    for perm in (rights.STATE_VIEW, rights.DISTRICT, rights.OBJECT):
        assign_perm(perm, viewer)
    assert client.get("/api/v1/state-requests/", headers=auth(viewer)).status_code == 200
    response = post(client, viewer, "/api/v1/state-requests/", {"districts": ["101"], "all": True})
    assert response.status_code == 403
    assert response.json() == {"detail": "Sending a state resync request needs the state resync W right."}
    response = post(client, cast.alice, "/api/v1/state-requests/", {"districts": ["101"], "all": True})
    assert response.status_code == 403
    assert not ResyncRequest.objects.exists()


def test_it_refuses_the_same_request_sent_twice_within_seconds(client, cast, monkeypatch):
    from tool import actions

    chain(cast.district)  # records to move: the request does not end at once
    body = {"district": "101", "objects": ["District"]}
    first = post(client, cast.alice, "/api/v1/requests/", body)
    assert first.status_code == 201, first.content
    again = post(client, cast.alice, "/api/v1/requests/", body)
    assert again.status_code == 400
    assert f"seconds ago (request {first.json()['id']}); it was not sent twice" in again.json()["objects"][0]
    assert ResyncRequest.objects.count() == 1
    # Another choice, another user, or the same later: each is a request of its own.
    assert (
        post(client, cast.alice, "/api/v1/requests/", {**body, "check_dependencies": True}).status_code == 201
    )
    assert post(client, cast.stella, "/api/v1/requests/", body).status_code == 201
    monkeypatch.setattr(actions, "REPEAT_SECONDS", 0)
    assert post(client, cast.alice, "/api/v1/requests/", body).status_code == 201
