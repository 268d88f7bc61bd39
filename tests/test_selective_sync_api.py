"""Selective Sync through the API: send, list, delete; outsiders."""

import pytest
from django.contrib.auth.models import User
from guardian.shortcuts import assign_perm
from rest_framework.authtoken.models import Token

from resync import rights
from resync.models import ResyncRequest
from selective.rights import SELECTIVE_VIEW

from .conftest import BOTH, COMMITTED, chain, run_queue
from .test_selective_sync import selective

pytestmark = pytest.mark.django_db(databases=BOTH)
# COMMITTED: the tests whose Selective Syncs a worker runs (run_queue, or selective() from test_selective_sync).

API = "/api/v1/selective-syncs/"


def auth(user) -> dict:
    return {"authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"}


@COMMITTED
def test_it_sends_lists_and_deletes_through_the_api(client, tool_cast, queue):
    chain(tool_cast.district)
    body = {"district": "101", "object": "PersonIdentity", "records": [1]}
    response = client.post(API, body, content_type="application/json", headers=auth(tool_cast.alice))
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["records"], created["objects"], created["district"]) == ([1], ["PersonIdentity"], "101")
    run_queue()
    listed = client.get(API, headers=auth(tool_cast.alice)).json()
    assert [r["id"] for r in listed["results"]] == [created["id"]]
    one = client.get(API + f"{created['id']}/", headers=auth(tool_cast.alice)).json()
    assert one["status"] == "finished" and one["steps"][0]["processed"] == 1
    bad = client.post(
        API, {**body, "records": [5]}, content_type="application/json", headers=auth(tool_cast.alice)
    )
    assert bad.status_code == 400
    assert bad.json() == {"records": ["No PersonIdentity record 5 at district 101 or at the state for 2027."]}
    assert client.delete(API + f"{created['id']}/", headers=auth(tool_cast.alice)).status_code == 204
    assert not ResyncRequest.objects.exists()


@COMMITTED
def test_it_keeps_the_api_from_outsiders(client, tool_cast, queue):
    chain(tool_cast.district)
    request = selective(tool_cast.district, "PersonIdentity", [1], tool_cast.alice)
    body = {"district": "101", "object": "PersonIdentity", "records": [1]}
    assert client.get(API).status_code == 401
    assert client.post(API, body, content_type="application/json").status_code == 401
    assert client.delete(API + f"{request.pk}/").status_code == 401
    bob = auth(tool_cast.bob)  # no Selective Sync right
    assert client.get(API, headers=bob).status_code == 403
    assert client.post(API, body, content_type="application/json", headers=bob).status_code == 403
    charlie = auth(tool_cast.charlie)
    assert client.get(API, headers=charlie).json()["results"] == []
    assert client.get(API + f"{request.pk}/", headers=charlie).status_code == 404
    assert client.delete(API + f"{request.pk}/", headers=charlie).status_code == 404
    refused = client.post(API, body, content_type="application/json", headers=charlie)
    assert refused.status_code == 400  # a body's district reads the same absent or not yours
    assert refused.json() == {"district": ["No district '101' among those you may resync."]}
    viewer = User.objects.create_user("dora", is_staff=True)
    assign_perm(rights.DISTRICT, viewer, tool_cast.district)
    assign_perm(SELECTIVE_VIEW, viewer)
    denied = client.delete(API + f"{request.pk}/", headers=auth(viewer))
    assert denied.status_code == 403 and denied.json() == {
        "detail": "Deleting Selective Sync history needs its D right."
    }
    assert ResyncRequest.objects.count() == 1


@COMMITTED
def test_it_hides_the_states_selective_syncs_from_district_users(client, tool_cast, queue):
    chain(tool_cast.district)
    request = selective(tool_cast.district, "PersonIdentity", [1], tool_cast.stella)
    assert client.get(API + f"{request.pk}/", headers=auth(tool_cast.alice)).status_code == 404
    assert client.get(API, headers=auth(tool_cast.alice)).json()["results"] == []
    assert [r["id"] for r in client.get(API, headers=auth(tool_cast.stella)).json()["results"]] == [
        request.pk
    ]
