"""DISBatchHistory and the Error Log over the API: paged, filtered, rights-narrowed, CSV."""

import csv
import datetime as dt
import io

import pytest
from django.utils import timezone

from history.models import DISBatchHistory, ErrorLog
from tool import actions

from .conftest import BOTH, add, chain, run_queue
from .test_api_resync import auth

# Transactional: every test's history comes from requests a worker runs (run_queue), and RQ enqueues a job on commit.
pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)


def resync(district, objects, user=None, level="district", check_dependencies=False):
    checked = actions.check_resync(district, None, objects, check_dependencies, user=user, level=level)
    return actions.do_request_resync(checked)


@pytest.fixture
def ran(cast, queue):
    """District A: a chain plus two Schools whose District is not at the state (parent_missing)
    and one state-excluded Calendar; district B: its District. Both resynced and run."""
    chain(cast.district)
    add(cast.district, "School", 2, {"District": 9})
    add(cast.district, "School", 3, {"District": 9})
    add(cast.district, "Calendar", 2, {"School": 1}, excluded=True)
    add(cast.other, "District", 1)
    a = resync(cast.district, ["PersonIdentity"], cast.alice, check_dependencies=True)
    b = resync(cast.other, ["District"], cast.charlie)
    run_queue()
    return a, b


def test_it_pages_and_filters_the_history(client, cast, ran):
    a, b = ran
    body = client.get("/api/v1/history/", {"page_size": 2}, headers=auth(cast.alice)).json()
    assert body["count"] == 5 and len(body["results"]) == 2 and "page=2" in body["next"]
    schools = client.get("/api/v1/history/", {"object": "School"}, headers=auth(cast.alice)).json()["results"]
    assert [(s["object"], s["request"], s["processed"], s["errors"], s["colour"]) for s in schools] == [
        ("School", a.pk, 3, 2, "red")
    ]
    everyone = client.get("/api/v1/history/", {"object": "District"}, headers=auth(cast.stella)).json()
    assert sorted(r["district"] for r in everyone["results"]) == ["101", "202"]
    only_b = client.get("/api/v1/history/", {"district": "202"}, headers=auth(cast.stella)).json()
    assert [r["request"] for r in only_b["results"]] == [b.pk]
    later = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    assert (
        client.get("/api/v1/history/", {"started_after": later}, headers=auth(cast.stella)).json()["count"]
        == 0
    )
    # An offset PostgreSQL refuses, and a moment before year 1 in UTC: both found by the fuzzer.
    odd = {"started_before": "0264-04-30T21:37:11-19:47"}
    assert client.get("/api/v1/history/", odd, headers=auth(cast.stella)).json()["count"] == 0
    early = client.get(
        "/api/v1/history/", {"started_after": "0001-01-01T00:00:00+05:00"}, headers=auth(cast.stella)
    )
    assert early.json() == {"started_after": ["Date and time out of range."]}


def test_it_keeps_each_district_to_its_own_history(client, cast, ran):
    a, b = ran
    theirs = DISBatchHistory.objects.get(request=b)
    assert client.get("/api/v1/history/", {"district": "202"}, headers=auth(cast.alice)).json()["count"] == 0
    assert client.get(f"/api/v1/history/{theirs.pk}/", headers=auth(cast.alice)).status_code == 404
    # Bob may resync, but holds no history view right.
    response = client.get("/api/v1/history/", headers=auth(cast.bob))
    assert response.status_code == 403
    assert response.json() == {"detail": "You need the history.view_disbatchhistory right."}


def test_it_filters_the_error_log(client, cast, ran):
    get = lambda **q: client.get("/api/v1/error-log/", q, headers=auth(cast.alice))  # noqa: E731
    body = get().json()
    assert body["count"] == ErrorLog.objects.filter(district=cast.district).count() == 3
    missing = get(reason="parent_missing").json()["results"]
    assert sorted((e["object"], e["record_id"]) for e in missing) == [("School", 2), ("School", 3)]
    assert [e["record_id"] for e in get(object="Calendar").json()["results"]] == [2]
    today = timezone.localdate()
    assert get(date_from=today.isoformat()).json()["count"] == 3
    assert get(date_to=(today - dt.timedelta(days=1)).isoformat()).json()["count"] == 0
    assert get(district="202").json()["count"] == 0
    bad = get(reason="bored")
    assert bad.status_code == 400 and list(bad.json()) == ["reason"]
    assert get(date_from="yesterday").json() == {"date_from": ["Enter a valid date."]}
    assert get(request="1.5").json() == {"request": ["Enter a whole number."]}


def test_it_exports_the_filtered_error_log_as_csv(client, cast, ran):
    a, _ = ran
    response = client.get("/api/v1/error-log/export/", {"reason": "parent_missing"}, headers=auth(cast.alice))
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["district"], r["object"], r["record_id"], r["reason"], r["request"]) for r in rows] == [
        ("101", "School", "2", "parent_missing", str(a.pk)),
        ("101", "School", "3", "parent_missing", str(a.pk)),
    ]
    as_csv = client.get("/api/v1/error-log/export/", headers={**auth(cast.alice), "accept": "text/csv"})
    assert as_csv.status_code == 200 and len(b"".join(as_csv.streaming_content).splitlines()) == 4


def test_it_hides_the_state_requests_errors_from_the_district(client, cast, queue):
    add(cast.district, "School", 2, {"District": 9})
    resync(cast.district, ["School"], cast.stella, level="state")
    run_queue()
    assert ErrorLog.objects.count() == 1
    assert client.get("/api/v1/error-log/", headers=auth(cast.alice)).json()["count"] == 0
    export = client.get("/api/v1/error-log/export/", headers=auth(cast.alice))
    assert len(b"".join(export.streaming_content).splitlines()) == 1  # the header alone
    assert client.get("/api/v1/error-log/", headers=auth(cast.stella)).json()["count"] == 1


def test_it_needs_the_error_log_right(client, cast, ran):
    for url in ("/api/v1/error-log/", "/api/v1/error-log/export/"):
        response = client.get(url, headers=auth(cast.bob))
        assert response.status_code == 403
        assert "history.view_errorlog" in response.content.decode()
