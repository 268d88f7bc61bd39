"""The Error Log and history in the admin, as each member of the cast sees them."""

import csv
import io

import pytest

from history.models import ErrorLog

from .conftest import BOTH, add, chain, run_queue
from .test_resync import resync

# Transactional: the errors fixture's requests are run by a worker (run_queue), and RQ enqueues a job on commit.
pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)


@pytest.fixture
def errors(cast, queue):
    """District A: one district-level request with two parent_missing errors, one state request with one."""
    chain(cast.district)
    add(cast.district, "Enrollment", 1, {"PersonIdentity": 9})
    add(cast.district, "Enrollment", 2, {"PersonIdentity": 9})
    resync(cast.district, ["PersonIdentity", "Enrollment"], check_dependencies=True)
    run_queue()
    add(cast.district, "Behavior", 1, {"PersonIdentity": 9})
    resync(cast.district, ["Behavior"], level="state")
    run_queue()
    chain(cast.other)
    add(cast.other, "Enrollment", 5, {"PersonIdentity": 9})
    resync(cast.other, ["Enrollment"])
    run_queue()
    assert ErrorLog.objects.count() == 4
    return cast


def export(client, query=""):
    response = client.get("/admin/history/errorlog/export.csv" + query)
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_it_exports_the_filtered_error_log_as_csv(client, errors):
    client.force_login(errors.stella)
    rows = export(client)
    assert {(r["district"], r["object"], r["record_id"]) for r in rows} == {
        ("101", "Enrollment", "1"),
        ("101", "Enrollment", "2"),
        ("101", "Behavior", "1"),
        ("202", "Enrollment", "5"),
    }
    assert all(r["reason"] == "parent_missing" for r in rows)
    only_b = export(client, f"?district__id__exact={errors.other.pk}")
    assert [r["record_id"] for r in only_b] == ["5"]


def test_it_shows_a_district_only_its_own_errors_and_none_of_the_states(client, errors):
    client.force_login(errors.alice)
    rows = export(client)
    assert {(r["object"], r["record_id"]) for r in rows} == {("Enrollment", "1"), ("Enrollment", "2")}
    html = client.get("/admin/history/errorlog/").content.decode()
    assert "Behavior" not in html and "Boone County" not in html
    history = client.get("/admin/history/disbatchhistory/").content.decode()
    assert "Behavior" not in history
    requests = client.get("/admin/resync/resyncrequest/").content.decode()
    assert "Full resync" not in requests and "Behavior" not in requests


def test_it_refuses_the_error_log_to_a_user_without_the_right(client, errors):
    client.force_login(errors.bob)  # bob: a district right, no Error Log R
    assert client.get("/admin/history/errorlog/").status_code == 403
    assert client.get("/admin/history/errorlog/export.csv").status_code == 403


def test_it_sends_an_outsider_to_the_login_for_the_export(client, errors):
    response = client.get("/admin/history/errorlog/export.csv")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
