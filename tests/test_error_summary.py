"""The Error Log by cause (history.summary) and "resend what failed" (tool.resend),
at the admin and the API, as each member of the cast sees them."""

import re
from collections import Counter

import pytest

from history.models import ErrorLog
from history.summary import summarise
from resync.models import ResyncRequest
from resync.rules import REASON_HELP, Reason

from .conftest import BOTH, add, chain, run_queue
from .test_resync import resync

# Transactional: the requests are run by a worker (run_queue), and RQ enqueues a job on commit.
pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)


def summary(client, user, query=""):
    client.force_login(user)
    response = client.get("/api/v1/error-log/summary/" + query)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def demo_run(demo_district, queue, superuser):
    """The demo district after a full resync: its planted errors in the Error Log."""
    district, expected = demo_district
    request = resync(district)
    run_queue()
    request.refresh_from_db()
    assert request.status == ResyncRequest.Status.FINISHED
    return district, expected, request


@pytest.fixture
def blocked(cast, queue):
    """District A: PersonIdentity 9 state-excluded, so Enrollments 1 and 2 under it miss their
    parent; a state request's Behavior error; district B an Enrollment missing its parent."""
    chain(cast.district)
    add(cast.district, "PersonIdentity", 9, {"ScheduleStructure": 1}, excluded=True)
    add(cast.district, "Enrollment", 1, {"PersonIdentity": 9})
    add(cast.district, "Enrollment", 2, {"PersonIdentity": 9})
    cast.req_a = resync(cast.district, ["Enrollment"], check_dependencies=True)
    run_queue()
    add(cast.district, "Behavior", 1, {"PersonIdentity": 9})
    cast.req_state = resync(cast.district, ["Behavior"], level="state")
    run_queue()
    chain(cast.other)
    add(cast.other, "Enrollment", 5, {"PersonIdentity": 9})
    cast.req_b = resync(cast.other, ["Enrollment"])
    run_queue()
    # Sent a minute ago is not needed: a finished request is no double click (refuse_repeat).
    assert ErrorLog.objects.count() == 5
    return cast


def test_it_lists_each_planted_reason_once_per_object_with_its_count(client, demo_run, superuser):
    _district, expected, request = demo_run
    groups = summary(client, superuser)
    keys = [(g["object"], g["reason"]) for g in groups]
    assert len(keys) == len(set(keys))  # each reason once per object
    stored = Counter(ErrorLog.objects.values_list("sync_object__name", "reason"))
    assert {(g["object"], g["reason"]): g["count"] for g in groups} == stored
    per_object = Counter()
    for g in groups:
        per_object[g["object"]] += g["count"]
    assert per_object == +expected.errors  # the generator's own count of what it planted
    # The demo plants each Test Scores rule's failure.
    planted = {"test_no_code", "test_unpublished", "test_no_date", "test_locked", "out_of_scope"}
    assert planted <= {g["reason"] for g in groups if g["object"] == "TestScore"}
    for g in groups:
        assert g["help"] == REASON_HELP[g["reason"]] and g["district"] == request.district.code
        assert 1 <= len(g["examples"]) <= min(3, g["count"])
        rows = ErrorLog.objects.filter(sync_object__name=g["object"], reason=g["reason"]).order_by("id")
        assert [e["record_id"] for e in g["examples"]] == [r.record_id for r in rows[:3]]
    assert [g["fixes"] for g in groups] == sorted((g["fixes"] for g in groups), reverse=True)


def test_it_gives_every_reason_a_help_text_saying_what_to_fix():
    assert set(REASON_HELP) == set(Reason.values)
    assert "set one in the test's setup" in REASON_HELP[Reason.TEST_NO_CODE]


def test_it_summarises_in_a_fixed_number_of_queries(demo_run, django_assert_num_queries):
    with django_assert_num_queries(4):  # GROUP BY, the examples' window, the catalog's parents (2)
        causes = summarise(ErrorLog.objects.all())
    assert len(causes) >= 6


def test_it_shows_the_summary_page_cheaply_with_the_help_and_a_resend_link(
    client, demo_run, superuser, django_assert_max_num_queries
):
    client.force_login(superuser)
    # The session, the user and rights (4), the filters (4), the summary (4), the alert count.
    with django_assert_max_num_queries(13):
        response = client.get("/admin/history/errorlog/summary/")
    html = response.content.decode()
    assert response.status_code == 200
    assert REASON_HELP[Reason.TEST_NO_CODE].replace("'", "&#x27;") in html
    assert 'id="resend-failed"' in html
    log = client.get("/admin/history/errorlog/").content.decode()
    assert 'id="by-cause"' in log and "set one in the test" in log  # the help beside each row


def test_it_puts_the_missing_parent_first_and_points_at_its_rows(client, blocked):
    groups = summary(client, blocked.alice)
    assert [(g["object"], g["reason"], g["count"], g["fixes"]) for g in groups] == [
        ("PersonIdentity", "state_excluded", 1, 3),
        ("Enrollment", "parent_missing", 2, 2),
    ]
    child = groups[1]
    assert child["caused_by_parent"] and child["parents_with_errors"] == ["PersonIdentity"]
    assert child["parent_rows"] == ["/api/v1/error-log/?district=101&object=PersonIdentity"]
    html = client.get("/admin/history/errorlog/summary/").content.decode()
    assert "Caused by the parent" in html and 'class="parent-rows"' in html


def test_it_shows_a_district_only_its_own_causes_and_none_of_the_states(client, blocked):
    assert {g["district"] for g in summary(client, blocked.alice)} == {"101"}
    assert "Behavior" not in {g["object"] for g in summary(client, blocked.alice)}
    assert [(g["district"], g["object"]) for g in summary(client, blocked.charlie)] == [("202", "Enrollment")]
    everything = {(g["district"], g["object"]) for g in summary(client, blocked.stella)}
    assert ("101", "Behavior") in everything and ("202", "Enrollment") in everything
    html = client.get("/admin/history/errorlog/summary/").content.decode()  # still stella
    assert "Behavior" in html
    client.force_login(blocked.charlie)
    html = client.get("/admin/history/errorlog/summary/").content.decode()
    assert "Adair" not in html and "101" not in html.split('id="causes"')[1]


def test_it_refuses_the_summary_without_the_error_log_right(client, blocked):
    client.force_login(blocked.bob)
    assert client.get("/admin/history/errorlog/summary/").status_code == 403
    assert client.get("/api/v1/error-log/summary/").status_code == 403


def test_it_resends_exactly_the_failing_objects_of_a_request(client, demo_run, superuser):
    district, _expected, request = demo_run
    failing = sorted(set(ErrorLog.objects.values_list("sync_object__name", flat=True)))
    client.force_login(superuser)
    url = f"/api/v1/requests/{request.pk}/resend-failed/"
    preview = client.get(url).json()
    assert sorted(preview["errors"]) == failing and preview["check_dependencies"] is False
    assert ResyncRequest.objects.count() == 1  # the preview sends nothing
    response = client.post(url)
    assert response.status_code == 201, response.content
    sent = ResyncRequest.objects.get(pk=response.json()["id"])
    assert sent.objects_asked == failing and not sent.check_dependencies
    assert sorted(sent.steps.values_list("sync_object__name", flat=True)) == failing


def test_it_resends_with_check_dependencies_when_a_parent_was_missing(client, blocked):
    client.force_login(blocked.alice)
    response = client.post(f"/api/v1/requests/{blocked.req_a.pk}/resend-failed/")
    assert response.status_code == 201, response.content
    sent = ResyncRequest.objects.get(pk=response.json()["id"])
    assert sent.objects_asked == ["Enrollment", "PersonIdentity"] and sent.check_dependencies
    assert sent.level == ResyncRequest.Level.DISTRICT and sent.requested_by == blocked.alice


def test_it_resends_from_an_error_log_filter_after_a_confirmation(client, blocked):
    client.force_login(blocked.alice)
    url = f"/admin/resync/resyncrequest/resend-failed/?sync_object__id__exact={blocked.req_a.steps.get(sync_object__name='Enrollment').sync_object_id}"
    page = client.get(url)
    html = page.content.decode()
    assert page.status_code == 200 and "Enrollment: 2 errors" in html and "PersonIdentity:" not in html
    assert 'id="resend-added"' in html  # its parents go first (Check Dependencies)
    before = ResyncRequest.objects.count()
    response = client.post(url)
    assert response.status_code == 303
    sent = ResyncRequest.objects.latest("id")
    assert ResyncRequest.objects.count() == before + 1
    assert sent.objects_asked == ["Enrollment"] and sent.check_dependencies


def test_it_refuses_to_resend_errors_of_several_districts_in_one_request(client, blocked):
    client.force_login(blocked.stella)
    page = client.get("/admin/resync/resyncrequest/resend-failed/")
    assert page.status_code == 400 and "filter the Error Log to one district" in page.content.decode()
    assert client.post("/admin/resync/resyncrequest/resend-failed/").status_code == 400
    assert ResyncRequest.objects.count() == 3


def test_it_hides_anothers_request_and_a_state_request_from_the_resend(client, blocked):
    client.force_login(blocked.charlie)
    assert client.post(f"/api/v1/requests/{blocked.req_a.pk}/resend-failed/").status_code == 404
    client.force_login(blocked.alice)
    assert client.post(f"/api/v1/requests/{blocked.req_state.pk}/resend-failed/").status_code == 404
    # Through the admin's filter, another district's request selects no error of one's own.
    page = client.get(
        f"/admin/resync/resyncrequest/resend-failed/?step__request__id__exact={blocked.req_b.pk}"
    )
    assert page.status_code == 400 and "No errors to resend" in page.content.decode()
    assert ResyncRequest.objects.count() == 3


def test_it_refuses_a_resend_of_objects_the_user_may_not_resync(client, blocked):
    client.force_login(blocked.bob)  # bob: Enrollment and PersonIdentity only
    response = client.post(f"/api/v1/requests/{blocked.req_a.pk}/resend-failed/")
    # Check Dependencies adds ScheduleStructure and above, which bob may not resync.
    assert response.status_code == 403 and "ScheduleStructure" in response.json()["detail"]
    assert ResyncRequest.objects.count() == 3


def test_it_resends_one_group_from_its_link_in_the_summary(client, blocked):
    client.force_login(blocked.alice)
    html = client.get("/admin/history/errorlog/summary/").content.decode()
    row = next(r for r in html.split('<tr class="cause"')[1:] if 'data-object="Enrollment"' in r)
    link = re.search(r'href="([^"]+)" class="resend-group"', row).group(1).replace("&amp;", "&")
    page = client.get(link).content.decode()
    assert "Enrollment: 2 errors" in page and "PersonIdentity:" not in page
    assert client.post(link).status_code == 303
    sent = ResyncRequest.objects.latest("id")
    assert sent.objects_asked == ["Enrollment"] and sent.check_dependencies


@pytest.fixture
def excluded(tool_cast, queue):
    """District A: Enrollments 3 and 4 state-excluded (their parent at the state), sent alone."""
    chain(tool_cast.district)
    for rid in (3, 4):
        add(tool_cast.district, "Enrollment", rid, {"PersonIdentity": 1}, excluded=True)
    add(tool_cast.district, "Enrollment", 5, {"PersonIdentity": 1})
    tool_cast.req = resync(tool_cast.district, ["Enrollment", "PersonIdentity"], check_dependencies=True)
    run_queue()
    assert sorted(ErrorLog.objects.values_list("record_id", flat=True)) == [3, 4]
    return tool_cast


def test_it_resends_exactly_the_failed_records_by_selective_sync(client, excluded):
    client.force_login(excluded.alice)
    url = f"/api/v1/requests/{excluded.req.pk}/resend-failed-records/"
    preview = client.get(url).json()
    assert preview == {"district": "101", "year": 2027, "object": "Enrollment", "records": [3, 4]}
    response = client.post(url)
    assert response.status_code == 201, response.content
    sent = ResyncRequest.objects.get(pk=response.json()["id"])
    assert sent.records == [3, 4] and sent.objects_asked == ["Enrollment"]


def test_it_refuses_a_records_resend_when_a_parent_was_missing_or_another_is_asking(client, blocked):
    client.force_login(blocked.stella)
    url = f"/api/v1/requests/{blocked.req_b.pk}/resend-failed-records/"
    response = client.post(url)
    assert response.status_code == 400 and "sends no parents" in str(response.json())
    client.force_login(blocked.charlie)
    assert client.post(f"/api/v1/requests/{blocked.req_a.pk}/resend-failed-records/").status_code == 404
    client.force_login(blocked.alice)
    assert client.get(f"/api/v1/requests/{blocked.req_state.pk}/resend-failed-records/").status_code == 404
    assert ResyncRequest.objects.count() == 3
