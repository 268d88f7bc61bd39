"""Issue 14, items 8 and 9: people read names, not ids, and every time in one zone, named.

A request is named by its district, year and time; a user by username; an Error Log
row by its record's district id and the label its schema names (a student's name and
SSID). A time is written in the district's zone (District.time_zone) with the zone's
name, alike on the page, in the live row and in the CSV; the API keeps ISO 8601.
"""

import csv
import datetime as dt
import io

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from alerts.models import AlertName, ProcessAlert
from history.models import DISBatchHistory, ErrorLog, StepStatus
from resync.models import DistrictRecord, ResyncRequest, SyncField, SyncObject
from runner import lifecycle

from .conftest import BOTH, add
from .test_api_resync import auth

pytestmark = pytest.mark.django_db(databases=BOTH)

# 14:02 UTC on 30 June 2027: 10:02 in New York (EDT), 09:02 in Chicago (CDT).
MOMENT = dt.datetime(2027, 6, 30, 14, 2, tzinfo=dt.UTC)


def ran(district, obj="PersonIdentity", errors=(), at=MOMENT) -> DISBatchHistory:
    """A finished request of `district` with one step of `obj`, its errors for record ids `errors`."""
    request = ResyncRequest.objects.create(
        district=district, school_year=2027, status="finished", outcome="red"
    )
    ResyncRequest.objects.filter(pk=request.pk).update(created_at=at)
    request.refresh_from_db()
    step = DISBatchHistory.objects.create(
        request=request,
        district=district,
        school_year=2027,
        sync_object=SyncObject.objects.get(name=obj),
        layer=0,
        status=StepStatus.RED,
        processed=len(errors) + 1,
        errors=len(errors),
        started_at=at,
        ended_at=at + dt.timedelta(minutes=1),
    )
    for rid in errors:
        ErrorLog.objects.create(
            step=step,
            district=district,
            sync_object=step.sync_object,
            record_id=rid,
            reason="parent_missing",
            message="Its parent is not at the state.",
        )
    ErrorLog.objects.filter(step=step).update(created_at=at)
    return step


def test_it_names_requests_steps_errors_and_alerts_by_district_year_and_time(cast):
    step = ran(cast.district, errors=[7])
    error = ErrorLog.objects.get()
    (alert,) = ProcessAlert.objects.notify(
        [cast.alice], name=AlertName.RESYNC_FINISHED, category="c", message="m", district=cast.district
    )
    assert str(step.request) == "Resync of 101 Adair County for 2026-2027, asked 2027-06-30 09:02 CDT"
    assert str(step) == "PersonIdentity of 101 Adair County for 2026-2027, asked 2027-06-30 09:02 CDT"
    assert str(error) == "Parent record not at the state: record 7"
    assert str(alert) == "Resync Finished for alice"
    record = add(cast.district, "School", 5)
    assert str(DistrictRecord.objects.select_related("sync_object").get(pk=record.pk)) == "School 5"
    assert str(DistrictRecord.objects.get(pk=record.pk)) == "Record 5"  # reads no other row for it


def test_it_tells_the_requester_a_resync_finished_by_its_name_not_its_ids(client, cast):
    step = ran(cast.district)
    request = step.request
    request.requested_by = cast.alice
    request.save()
    lifecycle.finish_request(request)
    alert = ProcessAlert.objects.get(user=cast.alice, name=AlertName.RESYNC_FINISHED)
    assert alert.message.startswith("Resync of 101 Adair County for 2026-2027, asked 2027-06-30 09:02 CDT")
    assert f"Resync {request.pk} " not in alert.message and f"of {cast.district.pk} " not in alert.message
    # It leads to the request's own page, which its requester may open.
    assert alert.link == f"/admin/resync/resyncrequest/{request.pk}/change/"
    client.force_login(cast.alice)
    assert client.get(f"/admin/alerts/processalert/{alert.pk}/open/")["Location"] == alert.link
    assert client.get(alert.link).status_code == 200


def test_it_shows_a_tool_row_in_the_districts_zone_alike_on_the_page_live_and_after_a_reconnect(client, cast):
    cast.district.time_zone = "America/New_York"
    cast.district.save()
    step = ran(cast.district)
    shown = "2027-06-30 10:02 EDT"
    client.force_login(cast.alice)
    page = client.get("/admin/resync/district/101/tool/")
    assert page.status_code == 200 and f'<td class="last">{shown}</td>' in page.content.decode()
    state = client.get("/admin/resync/district/101/tool/state/").json()
    assert [s["started_at_text"] for s in state["steps"]] == [shown]
    step = DISBatchHistory.objects.select_related("request", "sync_object", "district").get(pk=step.pk)
    assert lifecycle.step_event(step)["started_at_text"] == shown


def test_it_writes_the_error_log_and_its_csv_in_the_districts_zone(client, cast):
    ran(cast.district, errors=[7])
    ran(cast.other, "School", errors=[8])
    cast.other.time_zone = "Europe/Berlin"
    cast.other.save()
    client.force_login(cast.stella)
    html = client.get("/admin/history/errorlog/").content.decode()
    assert "2027-06-30 09:02 CDT" in html and "2027-06-30 16:02 CEST" in html
    response = client.get("/admin/history/errorlog/export.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted((r["district"], r["created_at"]) for r in rows) == [
        ("101", "2027-06-30 09:02 CDT"),
        ("202", "2027-06-30 16:02 CEST"),
    ]


def test_it_keeps_iso_8601_with_its_offset_in_the_api(client, cast):
    ProcessAlert.objects.notify([cast.alice], name=AlertName.RESYNC_FINISHED, category="c", message="m")
    ProcessAlert.objects.update(created_at=MOMENT)
    (alert,) = client.get("/api/v1/alerts/", headers=auth(cast.alice)).json()["results"]
    assert dt.datetime.fromisoformat(alert["created_at"]) == MOMENT
    assert alert["created_at"].endswith(("-05:00", "+00:00", "Z"))


def test_it_refuses_a_time_zone_the_zone_database_does_not_know(cast):
    cast.district.time_zone = "Mars/Olympus_Mons"
    with pytest.raises(ValidationError, match="not a time zone"):
        cast.district.full_clean()
    for bad in ("", " UTC", "../etc/passwd"):
        cast.district.time_zone = bad
        with pytest.raises(ValidationError):
            cast.district.full_clean()


def test_it_lets_a_state_administrator_set_a_districts_time_zone_and_nothing_else(client, cast):
    client.force_login(cast.stella)
    url = f"/admin/resync/district/{cast.district.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200 and 'name="time_zone"' in page.content.decode()
    assert 'name="name"' not in page.content.decode()  # the rest is read-only to her
    refused = client.post(url, {"time_zone": "Mars/Olympus_Mons"})
    assert refused.status_code == 200 and "not a time zone" in refused.content.decode()
    done = client.post(url, {"time_zone": "America/New_York", "name": "Renamed"})
    assert done.status_code == 302
    cast.district.refresh_from_db()
    assert (cast.district.time_zone, cast.district.name) == ("America/New_York", "Adair County")


def test_it_lets_no_district_administrator_set_the_time_zone(client, cast):
    client.force_login(cast.alice)
    url = f"/admin/resync/district/{cast.district.pk}/change/"
    assert client.post(url, {"time_zone": "UTC"}).status_code in (403, 404)
    cast.district.refresh_from_db()
    assert cast.district.time_zone == "America/Chicago"


def test_it_marks_the_shipped_label_fields_of_the_schemas():
    labels = set(SyncField.objects.filter(label=True).values_list("sync_object__name", "name"))
    assert {("PersonIdentity", "first"), ("PersonIdentity", "last"), ("PersonIdentity", "state_id")} <= labels
    assert ("School", "name") in labels and ("Enrollment", "grade") not in labels


def test_it_labels_error_log_rows_from_the_records_payload_in_constant_queries(
    client, cast, django_assert_max_num_queries
):
    add(
        cast.district,
        "PersonIdentity",
        7,
        payload={"first": "Ada", "last": "Lovelace", "state_id": "1234567"},
    )
    add(cast.district, "School", 8, payload={"name": "Adair High", "number": "001"})
    ran(cast.district, errors=[7, 99])  # 99: no such record any more, so no label
    ran(cast.district, "School", errors=[8])
    client.force_login(cast.alice)
    connection.queries_log.clear()
    with django_assert_max_num_queries(20) as few:
        html = client.get("/admin/history/errorlog/").content.decode()
    assert '<td class="field-record">7 Ada Lovelace 1234567</td>' in html
    assert '<td class="field-record">8 Adair High</td>' in html
    assert '<td class="field-record">99</td>' in html
    baseline = len(few.captured_queries)
    for i in range(20):
        add(cast.district, "PersonIdentity", 100 + i, payload={"first": f"P{i}", "last": "X"})
    ran(cast.district, errors=range(100, 120))
    connection.queries_log.clear()
    with django_assert_max_num_queries(baseline):
        html = client.get("/admin/history/errorlog/").content.decode()
    assert "119 P19 X" in html


def test_it_titles_schema_fields_by_their_objects_name_in_constant_queries(
    client, cast, django_assert_max_num_queries
):
    client.force_login(cast.stella)
    few, many = SyncObject.objects.get(name="District"), SyncObject.objects.get(name="Test")
    assert few.fields.count() < many.fields.count()
    connection.queries_log.clear()
    with django_assert_max_num_queries(30) as counted:
        client.get(f"/admin/resync/syncobject/{few.pk}/change/")
    baseline = len(counted.captured_queries)  # read now: clearing the log empties the capture
    connection.queries_log.clear()
    with django_assert_max_num_queries(baseline):
        html = client.get(f"/admin/resync/syncobject/{many.pk}/change/").content.decode()
    assert "Test.state_code" in html and f"{many.pk}.state_code" not in html


def test_it_shows_a_requests_page_and_its_steps_in_the_districts_zone(client, cast):
    cast.district.time_zone = "America/New_York"
    cast.district.save()
    step = ran(cast.district)
    ResyncRequest.objects.filter(pk=step.request_id).update(started_at=MOMENT, finished_at=MOMENT)
    client.force_login(cast.alice)
    html = client.get(f"/admin/resync/resyncrequest/{step.request_id}/change/").content.decode()
    assert html.count("2027-06-30 10:02 EDT") >= 4  # asked, started, finished, the step's start
    assert "2027-06-30 10:03 EDT" in html  # the step's end
    listed = client.get("/admin/resync/resyncrequest/").content.decode()
    assert "2027-06-30 10:02 EDT" in listed


def test_it_shows_verifications_and_loads_in_the_districts_zone(client, tool_cast):
    from loads.models import Load
    from verification.models import VerificationRun

    cast = tool_cast
    cast.district.time_zone = "Asia/Tokyo"
    cast.district.save()
    run = VerificationRun.objects.create(district=cast.district, school_year=2027, sync_objects=["District"])
    VerificationRun.objects.filter(pk=run.pk).update(created_at=MOMENT, started_at=MOMENT, finished_at=MOMENT)
    load = Load.objects.create(district=cast.district, sync_object=SyncObject.objects.get(name="District"))
    Load.objects.filter(pk=load.pk).update(loaded_at=MOMENT)
    client.force_login(cast.stella)
    shown = "2027-06-30 23:02 JST"
    assert shown in client.get("/admin/verification/verificationrun/").content.decode()
    page = client.get(f"/admin/verification/verificationrun/{run.pk}/change/").content.decode()
    assert page.count(shown) >= 3  # created, started, finished
    assert shown in client.get("/admin/loads/load/").content.decode()
    run.refresh_from_db()
    assert str(run) == f"Verification of 101 Adair County for 2026-2027, started {shown}"
    assert str(load) == "Load of District into 101 Adair County"


def test_it_labels_error_log_rows_in_the_api_in_constant_queries(client, cast, django_assert_max_num_queries):
    add(
        cast.district,
        "PersonIdentity",
        7,
        payload={"first": "Ada", "last": "Lovelace", "state_id": "1234567"},
    )
    ran(cast.district, errors=[7, 99])
    connection.queries_log.clear()
    with django_assert_max_num_queries(30) as few:
        rows = client.get("/api/v1/error-log/", headers=auth(cast.alice)).json()["results"]
    baseline = len(few.captured_queries)  # read now: clearing the log empties the capture
    assert sorted((r["record_id"], r["record_label"]) for r in rows) == [
        (7, "Ada Lovelace 1234567"),
        (99, ""),
    ]
    for i in range(20):
        add(cast.district, "PersonIdentity", 100 + i, payload={"first": f"P{i}", "last": "X"})
    ran(cast.district, errors=range(100, 120))
    connection.queries_log.clear()
    with django_assert_max_num_queries(baseline):
        rows = client.get("/api/v1/error-log/", headers=auth(cast.alice)).json()["results"]
    assert {"record_id": 119, "record_label": "P19 X"}.items() <= next(
        r for r in rows if r["record_id"] == 119
    ).items()


def test_it_confirms_deleting_a_step_in_constant_queries_however_many_its_errors(
    client, cast, django_assert_max_num_queries
):
    client.force_login(cast.stella)
    counts = []
    for n in (2, 40):
        step = ran(cast.district, errors=range(n))
        connection.queries_log.clear()
        with django_assert_max_num_queries(40) as counted:
            page = client.post(
                "/admin/history/disbatchhistory/",
                {"action": "delete_selected", "_selected_action": [step.pk]},
            )
        counts.append(len(counted.captured_queries))
        assert page.status_code == 200 and "Parent record not at the state: record 1" in page.content.decode()
    assert counts[1] <= counts[0]
