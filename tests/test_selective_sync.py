"""Selective Sync: single PersonIdentity and Enrollment records, through the actions
and the admin tool, with a batch's validation, Error Log and history."""

import pytest
from django.contrib.auth.models import User
from django.db import connection
from guardian.shortcuts import assign_perm

from core.errors import ResyncError, RightsError
from history.models import DISBatchHistory, ErrorLog
from resync import rights
from resync.models import DistrictRecord, ResyncRequest, StateRecord
from resync.rules import Reason
from selective.actions import check_selective_sync, do_selective_sync
from selective.rights import SELECTIVE_USE, SELECTIVE_VIEW
from tool import actions

from .conftest import BOTH, COMMITTED, add, chain, run_queue

pytestmark = pytest.mark.django_db(databases=BOTH)
# COMMITTED: the tests whose Selective Syncs a worker runs (run_queue).

TOOL = "/admin/verification/selectivesync/"


def at_state(obj: str) -> dict[int, dict]:
    return dict(StateRecord.objects.filter(sync_object=obj).values_list("record_id", "payload"))


def synced(district, objects) -> None:
    actions.do_request_resync(actions.check_resync(district, None, objects, True))
    run_queue()


def selective(district, obj, records, user=None, year=None) -> ResyncRequest:
    request = do_selective_sync(check_selective_sync(district, year, obj, records, user))
    run_queue()
    request.refresh_from_db()
    return request


@pytest.fixture
def enrolled(district, queue):
    """Five enrollments at the district (3 is state-excluded); only their parents at the state."""
    chain(district)
    for i in range(1, 6):
        add(district, "Enrollment", i, {"PersonIdentity": 1}, {"grade": "09"}, excluded=i == 3)
    synced(district, ["PersonIdentity"])
    return district


@COMMITTED
def test_it_resyncs_only_the_named_enrollments_with_a_batchs_error_log_and_history(enrolled):
    request = selective(enrolled, "enrollment", "1, 3")
    assert (request.objects_asked, request.records, request.status) == (["Enrollment"], [1, 3], "finished")
    assert set(at_state("Enrollment")) == {1}
    step = DISBatchHistory.objects.get(request=request)
    assert (step.sync_object.name, step.processed, step.errors, step.status) == ("Enrollment", 2, 1, "red")
    error = ErrorLog.objects.get(step=step)
    assert (error.record_id, error.reason) == (3, Reason.STATE_EXCLUDED)


@COMMITTED
def test_it_removes_at_the_state_only_the_named_records_the_district_deleted(enrolled):
    synced(enrolled, ["Enrollment"])
    assert set(at_state("Enrollment")) == {1, 2, 4, 5}
    DistrictRecord.objects.filter(sync_object__name="Enrollment", record_id__in=[2, 4]).delete()
    request = selective(enrolled, "Enrollment", [2])  # only the state still has 2: it is removed there
    assert set(at_state("Enrollment")) == {1, 4, 5}  # 4 was not named: a whole-object resync's job
    assert DISBatchHistory.objects.get(request=request).processed == 0


@COMMITTED
def test_it_resyncs_a_person_by_district_person_id(enrolled):
    DistrictRecord.objects.filter(sync_object__name="PersonIdentity", record_id=1).update(
        payload={"first": "Ada"}
    )
    selective(enrolled, "PersonIdentity", [1])
    assert at_state("PersonIdentity") == {1: {"first": "Ada"}}


@COMMITTED
def test_it_errors_a_record_whose_parent_is_not_at_the_state(district, queue):
    chain(district)
    add(district, "Enrollment", 7, {"PersonIdentity": 1})
    request = selective(district, "Enrollment", [7])
    error = ErrorLog.objects.get(step__request=request)
    assert (error.record_id, error.reason) == (7, Reason.PARENT_MISSING)
    assert request.outcome == "red"


@COMMITTED
@pytest.mark.parametrize(
    "obj, records, year, message",
    [
        (
            "Calendar",
            "1",
            None,
            "Selective Sync resyncs PersonIdentity or Enrollment records, not 'Calendar'.",
        ),
        ("Enrollment", "1, x", None, "Record id 'x' is not a whole number."),
        ("Enrollment", "0", None, "Record id 0 is not a positive number."),
        ("Enrollment", str(2**63), None, f"Record id {2**63} is too large."),
        ("Enrollment", " , ", None, "Give at least one record id."),
        ("Enrollment", list(range(1, 1002)), None, "At most 1000 records at a time; got 1001."),
        ("Enrollment", "1 8 9", None, "No Enrollment record 8, 9 at district 101 or at the state for 2027."),
        ("Enrollment", "1", 2028, "No Enrollment record 1 at district 101 or at the state for 2028."),
        ("Enrollment", "1", 2020, "School year 2020 is not configured for district 101: choose 2027, 2028."),
    ],
)
def test_it_refuses_bad_input_naming_the_problem(enrolled, obj, records, year, message):
    with pytest.raises(ResyncError) as e:
        check_selective_sync(enrolled, year, obj, records)
    assert str(e.value) == message
    assert not ResyncRequest.objects.filter(records__isnull=False).exists()


def test_it_needs_the_district_right_the_tool_right_and_the_object_right(tool_cast, queue):
    chain(tool_cast.district)
    with pytest.raises(RightsError, match="You have no right to resync district 101."):
        check_selective_sync(tool_cast.district, None, "PersonIdentity", [1], tool_cast.charlie)
    with pytest.raises(RightsError, match="Selective Sync needs its W right."):
        check_selective_sync(tool_cast.district, None, "PersonIdentity", [1], tool_cast.bob)
    clerk = User.objects.create_user("dora", is_staff=True)
    assign_perm(rights.DISTRICT, clerk, tool_cast.district)
    assign_perm(SELECTIVE_USE, clerk)
    with pytest.raises(RightsError, match="You have no tool right to resync PersonIdentity."):
        check_selective_sync(tool_cast.district, None, "PersonIdentity", [1], clerk)
    checked = check_selective_sync(tool_cast.district, None, "PersonIdentity", [1], tool_cast.stella)
    assert (checked.level, checked.records) == ("state", [1])


# ---- the admin tool and its history ------------------------------------------------


@COMMITTED
def test_it_sends_from_the_admin_and_lists_the_history(client, tool_cast, queue):
    chain(tool_cast.district)
    client.force_login(tool_cast.alice)
    assert 'name="records"' in client.get(TOOL + "add/").content.decode()
    response = client.post(TOOL + "add/", {"district": "101", "object": "PersonIdentity", "records": "1"})
    assert response.status_code == 302 and response["Location"] == TOOL
    request = ResyncRequest.objects.get()
    assert (request.records, request.requested_by, request.level) == ([1], tool_cast.alice, "district")
    run_queue()
    html = client.get(TOOL).content.decode()
    assert f'href="{TOOL}{request.pk}/change/"' in html and "PersonIdentity" in html
    bad = client.post(
        TOOL + "add/", {"district": "101", "object": "PersonIdentity", "records": "9"}, follow=True
    )
    assert "No PersonIdentity record 9 at district 101 or at the state for 2027." in bad.content.decode()
    assert ResyncRequest.objects.count() == 1


@COMMITTED
def test_it_deletes_finished_history_with_the_d_right_only(client, tool_cast, queue):
    chain(tool_cast.district)
    synced(tool_cast.district, ["ScheduleStructure"])
    done = selective(tool_cast.district, "PersonIdentity", [1], tool_cast.alice)
    waiting = do_selective_sync(check_selective_sync(tool_cast.district, None, "PersonIdentity", [1]))
    viewer = User.objects.create_user("dora", is_staff=True)
    assign_perm(rights.DISTRICT, viewer, tool_cast.district)
    assign_perm(SELECTIVE_VIEW, viewer)
    client.force_login(viewer)
    assert client.get(TOOL).status_code == 200
    assert client.get(TOOL + "add/").status_code == 403
    assert client.post(TOOL + f"{done.pk}/delete/", {"post": "yes"}).status_code == 403
    client.force_login(tool_cast.alice)
    assert client.post(TOOL + f"{waiting.pk}/delete/", {"post": "yes"}).status_code == 403  # still queued
    assert client.post(TOOL + f"{done.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not ResyncRequest.objects.filter(pk=done.pk).exists()
    assert not DISBatchHistory.objects.filter(request_id=done.pk).exists()
    assert ResyncRequest.objects.filter(pk=waiting.pk).exists()


@COMMITTED
def test_it_keeps_the_tool_from_outsiders(client, tool_cast, queue):
    chain(tool_cast.district)
    request = selective(tool_cast.district, "PersonIdentity", [1], tool_cast.alice)
    for url in (TOOL, TOOL + "add/", TOOL + f"{request.pk}/change/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    client.force_login(tool_cast.bob)  # may resync district A, but holds no Selective Sync right
    assert client.get(TOOL).status_code == 403
    assert client.get(TOOL + "add/").status_code == 403
    assert (
        client.post(
            TOOL + "add/", {"district": "101", "object": "PersonIdentity", "records": "1"}
        ).status_code
        == 403
    )
    client.force_login(tool_cast.charlie)  # another district's administrator
    assert f"{TOOL}{request.pk}/change/" not in client.get(TOOL).content.decode()
    assert client.get(TOOL + f"{request.pk}/change/").status_code == 404
    assert client.post(TOOL + f"{request.pk}/delete/", {"post": "yes"}).status_code == 404
    assert (
        client.post(
            TOOL + "add/", {"district": "101", "object": "PersonIdentity", "records": "1"}
        ).status_code
        == 404
    )
    assert ResyncRequest.objects.count() == 1


@COMMITTED
def test_it_hides_the_states_selective_syncs_from_district_users(client, tool_cast, queue):
    chain(tool_cast.district)
    request = selective(tool_cast.district, "PersonIdentity", [1], tool_cast.stella)
    assert request.level == "state"
    client.force_login(tool_cast.alice)
    assert client.get(TOOL + f"{request.pk}/change/").status_code == 404
    client.force_login(
        tool_cast.stella
    )  # its alerts went to the district's users: still the state's to delete
    assert client.post(TOOL + f"{request.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not ResyncRequest.objects.exists()


@COMMITTED
def test_it_lists_the_history_in_constant_queries(client, tool_cast, queue, django_assert_max_num_queries):
    chain(tool_cast.district)
    client.force_login(tool_cast.alice)
    selective(tool_cast.district, "PersonIdentity", [1], tool_cast.alice)
    connection.queries_log.clear()
    with django_assert_max_num_queries(40) as few:
        assert client.get(TOOL).status_code == 200
    baseline = len(few.captured_queries)
    assert baseline > 0
    for _ in range(6):
        selective(tool_cast.district, "PersonIdentity", [1], tool_cast.alice)
    connection.queries_log.clear()
    with django_assert_max_num_queries(baseline):
        response = client.get(TOOL)
    assert response.content.decode().count("PersonIdentity") >= 7
