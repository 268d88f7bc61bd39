"""The Resync State Data tool pages, through the real admin URLs."""

import pytest
from django.db import connection

from alerts.models import ProcessAlert
from history.models import DISBatchHistory
from resync.models import District, ResyncRequest

from .conftest import BOTH, COMMITTED, chain, run_queue

pytestmark = pytest.mark.django_db(databases=BOTH)
# COMMITTED: the tests whose requests a worker runs, or that read the RQ queue (a job is enqueued on commit).


def tool(code="101"):
    return f"/admin/resync/district/{code}/tool/"


@COMMITTED
def test_it_lists_the_objects_offered_with_their_latest_results(client, cast, queue):
    chain(cast.district)
    client.force_login(cast.alice)
    client.post(tool(), {"objects": ["PersonIdentity"], "check_dependencies": "1", "year": "2027"})
    run_queue()
    html = client.get(tool()).content.decode()
    assert 'data-object="PersonIdentity"' in html and 'data-object="AttendanceSDMinute"' not in html
    assert (
        'title="1 records sent">Processed: <span class="processed">1</span> Errors: <span class="errors">0</span>'
        in html
    )
    assert 'status-dot status-green" title="Green"' in html


def test_it_offers_only_year_objects_for_another_year(client, cast):
    client.force_login(cast.alice)
    html = client.get(tool() + "?year=2028").content.decode()
    assert 'data-object="Enrollment"' in html
    assert 'data-object="District"' not in html  # not tied to a school year
    assert 'data-object="Graduation"' not in html  # not configured for other years
    assert '<option value="2028" selected>' in html


def test_it_sends_a_partial_resync_with_check_dependencies(client, cast, queue):
    client.force_login(cast.alice)
    response = client.post(tool(), {"objects": ["Enrollment"], "check_dependencies": "1", "year": "2027"})
    assert response.status_code == 302
    request = ResyncRequest.objects.get()
    assert (request.objects_asked, request.check_dependencies, request.requested_by) == (
        ["Enrollment"],
        True,
        cast.alice,
    )
    assert DISBatchHistory.objects.filter(request=request).count() == 6


def test_it_names_parents_the_user_may_not_resync(client, cast):
    client.force_login(cast.bob)
    response = client.post(
        tool(), {"objects": ["Enrollment"], "check_dependencies": "1", "year": "2027"}, follow=True
    )
    text = response.content.decode()
    assert (
        "Check Dependencies needs parents you may not resync: District, School, Calendar, ScheduleStructure."
        in text
    )
    assert not ResyncRequest.objects.exists()


def test_it_refuses_a_year_the_district_does_not_sync(client, cast):
    client.force_login(cast.alice)
    response = client.post(tool(), {"objects": ["Enrollment"], "year": "2020"}, follow=True)
    assert "School year 2020 is not configured for district 101" in response.content.decode()
    assert not ResyncRequest.objects.exists()


def test_it_previews_the_plan_in_order(client, cast):
    client.force_login(cast.alice)
    body = client.get(tool() + "plan/", {"objects": ["Enrollment"], "check_dependencies": "1"}).json()
    assert body["order"] == [
        "District",
        "School",
        "Calendar",
        "ScheduleStructure",
        "PersonIdentity",
        "Enrollment",
    ]
    assert (
        client.get(tool() + "plan/", {"objects": ["Nope"]}).json()["error"] == "Unknown sync object(s): Nope."
    )


def test_it_hides_another_districts_tool(client, cast):
    client.force_login(cast.charlie)
    assert client.get(tool("101")).status_code == 404
    assert client.get(tool("101") + "plan/").status_code == 404
    assert client.post(tool("101"), {"full": "1"}).status_code == 404
    assert not ResyncRequest.objects.exists()


def test_it_sends_an_outsider_to_the_login(client, cast):
    response = client.get(tool())
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@COMMITTED
def test_it_alerts_the_district_but_hides_the_objects_the_state_asked_for(client, cast, queue):
    chain(cast.district)
    client.force_login(cast.stella)
    response = client.post(
        "/admin/resync/district/state-tool/",
        {"districts": ["101"], "objects": ["PersonIdentity"], "check_dependencies": "1"},
    )
    assert response.status_code == 302
    request = ResyncRequest.objects.get()
    assert request.level == "state"
    alerts = ProcessAlert.objects.filter(name="State Resync Requested", category="Vertical Interoperability")
    assert set(alerts.values_list("user__username", flat=True)) == {"stella", "alice", "bob"}
    assert not ProcessAlert.objects.filter(user=cast.charlie).exists()
    assert all("PersonIdentity" not in a.message for a in alerts)
    run_queue()

    client.force_login(cast.alice)
    html = client.get(tool()).content.decode()
    assert 'status-green" title="Green"' not in html  # the state's steps are not the district's to see
    inbox = client.get("/admin/alerts/processalert/").content.decode()
    assert "The state requested a resync of district 101" in inbox and "PersonIdentity" not in inbox

    client.force_login(cast.stella)
    assert 'status-green" title="Green"' in client.get(tool()).content.decode()
    assert ProcessAlert.objects.filter(user=cast.stella, name="Resync Finished").exists()


def test_it_keeps_the_state_tool_from_district_users(client, cast):
    client.force_login(cast.alice)
    assert client.get("/admin/resync/district/state-tool/").status_code == 404
    assert (
        client.post("/admin/resync/district/state-tool/", {"districts": ["101"], "full": "1"}).status_code
        == 404
    )
    assert not ResyncRequest.objects.exists()


@COMMITTED
def test_it_shows_the_tool_in_constant_queries(client, cast, queue, django_assert_max_num_queries):
    chain(cast.district)
    client.force_login(cast.alice)
    client.post(tool(), {"objects": ["District"], "year": "2027"})
    run_queue()
    connection.queries_log.clear()  # a full log (9000) would make the capture below count nothing
    with django_assert_max_num_queries(30) as few:
        client.get(tool())
    baseline = len(few.captured_queries)  # read now: clearing the log empties the capture
    assert baseline > 0
    for _ in range(3):
        client.post(tool(), {"full": "1", "year": "2027"})
        run_queue()
    connection.queries_log.clear()
    with django_assert_max_num_queries(baseline):
        assert client.get(tool()).status_code == 200


@COMMITTED
def test_it_shows_the_agent_queue_as_each_user_may_see_it(client, cast, queue):
    chain(cast.district)
    client.post("/admin/logout/")
    client.force_login(cast.stella)
    client.post("/admin/resync/district/state-tool/", {"districts": ["101"], "objects": ["District"]})
    client.force_login(cast.alice)
    client.post(tool(), {"objects": ["School"], "check_dependencies": "1", "year": "2027"})
    html = client.get("/admin/resync/resyncrequest/queue/").content.decode()
    assert "Waiting for another request" in html  # the district's own request waits its turn
    assert "RQ queue" not in html  # RQ internals are the state's to see
    assert html.count("<td>State</td>") == 0  # the state's request is not shown to the district
    client.force_login(cast.stella)
    html = client.get("/admin/resync/resyncrequest/queue/").content.decode()
    assert "<td>State</td>" in html and "Queued jobs: 1" in html
    run_queue()
    assert (
        "Nothing is waiting or running." in client.get("/admin/resync/resyncrequest/queue/").content.decode()
    )
    client.force_login(cast.bob)
    assert client.get("/admin/resync/resyncrequest/queue/").status_code == 200
    client.logout()
    assert client.get("/admin/resync/resyncrequest/queue/").status_code == 302


def test_it_links_each_user_to_their_tools_from_the_admin_home(client, cast):
    client.force_login(cast.alice)
    html = client.get("/admin/").content.decode()
    assert 'href="/admin/resync/district/101/tool/"' in html
    assert "/admin/resync/district/202/tool/" not in html and "state-tool" not in html
    client.force_login(cast.stella)
    html = client.get("/admin/").content.decode()
    assert "/admin/resync/district/state-tool/" in html and "/admin/resync/district/202/tool/" in html


def test_it_answers_the_tools_script_in_json(client, cast, queue):
    client.force_login(cast.alice)
    json_ = {"HTTP_ACCEPT": "application/json"}
    ok = client.post(
        tool(), {"objects": ["School", "Calendar"], "check_dependencies": "1", "year": "2027"}, **json_
    )
    assert ok.status_code == 200
    assert ok.json()["order"] == ["District", "School", "Calendar"]
    assert ResyncRequest.objects.get().pk == ok.json()["request"]
    bad = client.post(tool(), {"objects": ["Nope"], "year": "2027"}, **json_)
    assert (bad.status_code, bad.json()) == (400, {"error": "Unknown sync object(s): Nope."})


def test_its_json_answers_refuse_as_the_api_does(client, cast):
    # Bob holds the tool right for Enrollment and PersonIdentity, not for their parents.
    client.force_login(cast.bob)
    parents = {"objects": "Enrollment", "check_dependencies": "1"}
    preview = client.get(tool() + "plan/", parents)
    api = client.get("/api/v1/districts/101/plan/", {**parents, "check_dependencies": "true"})
    assert (preview.status_code, api.status_code) == (403, 403)
    assert "Check Dependencies needs parents you may not resync" in preview.json()["error"]
    sent = client.post(tool(), parents, HTTP_ACCEPT="application/json")
    assert sent.status_code == 403 and not ResyncRequest.objects.exists()
    unknown = client.get(tool() + "plan/", {"objects": "Nope"})
    assert (
        unknown.status_code,
        client.get("/api/v1/districts/101/plan/", {"objects": "Nope"}).status_code,
    ) == (
        400,
        400,
    )


STATE_TOOL = "/admin/resync/district/state-tool/"


@COMMITTED
def test_it_marks_the_state_tools_rows_for_live_updates(client, cast, queue):
    chain(cast.district)
    client.force_login(cast.stella)
    client.post(STATE_TOOL, {"districts": ["101"], "objects": ["District"]})
    request = ResyncRequest.objects.get()
    html = client.get(STATE_TOOL).content.decode()
    # Running: the row names its request for tool.js to follow, and its outcome is Gray until it ends.
    assert f'data-district="{cast.district.pk}" data-request="{request.pk}">' in html
    assert (
        '<span class="status-dot status-gray" title="Gray">●</span> <span class="outcome">Running</span>'
        in html
    )
    assert f'data-district="{cast.other.pk}" data-request="">' in html
    assert "resync/tool.js" in html
    run_queue()
    html = client.get(STATE_TOOL).content.decode()
    assert f'data-request="{request.pk}" data-finished="{request.pk}">' in html
    assert (
        '<span class="status-dot status-green" title="Green">●</span> <span class="outcome">Green</span>'
        in html
    )
    assert '<span class="request-status">Finished</span>' in html


@COMMITTED
def test_it_shows_the_state_tool_in_constant_queries(client, cast, queue, django_assert_max_num_queries):
    chain(cast.district)
    client.force_login(cast.stella)
    client.post(STATE_TOOL, {"districts": ["101"], "objects": ["District"]})
    run_queue()
    connection.queries_log.clear()  # a full log (9000) would make the capture below count nothing
    with django_assert_max_num_queries(30) as few:
        client.get(STATE_TOOL)
    baseline = len(few.captured_queries)  # read now: clearing the log empties the capture
    assert baseline > 0
    for code in ("301", "302", "303"):  # more districts, each with a request of its own
        District.objects.create(state=cast.district.state, code=code, name=f"County {code}", scope_year=2027)
    client.post(STATE_TOOL, {"districts": ["101", "202", "301", "302", "303"], "objects": ["District"]})
    client.post(STATE_TOOL, {"districts": ["101", "202"], "full": "1"})
    connection.queries_log.clear()
    with django_assert_max_num_queries(baseline):
        assert client.get(STATE_TOOL).status_code == 200


def test_it_sends_a_state_request_of_several_districts_all_or_none(cast):
    from core.errors import ResyncError
    from tool import actions

    chain(cast.other)  # its request keeps running (no worker here): a repeat is refused

    def checked(district, objects=("School",)):
        return actions.check_resync(
            district, None, list(objects), False, user=cast.stella, level=ResyncRequest.Level.STATE
        )

    first = actions.do_request_resyncs([checked(cast.district), checked(cast.other)])
    assert [r.district for r in first] == [cast.district, cast.other]
    assert all(r.level == ResyncRequest.Level.STATE and r.requested_by == cast.stella for r in first)
    assert ProcessAlert.objects.filter(request__in=first, name="State Resync Requested").count() >= 2
    sent = ResyncRequest.objects.count()
    # A new one for the first, the same again seconds later for the other (refuse_repeat):
    # neither is stored.
    with pytest.raises(ResyncError, match=f"sent the same resync of district {cast.other.code}"):
        actions.do_request_resyncs([checked(cast.district, ["District"]), checked(cast.other)])
    assert ResyncRequest.objects.count() == sent


def test_it_refuses_the_same_district_twice_in_one_state_request(cast):
    from core.errors import ResyncError
    from tool import actions

    checked = [
        actions.check_resync(
            cast.district, None, ["School"], False, user=cast.stella, level=ResyncRequest.Level.STATE
        )
        for _ in range(2)
    ]
    with pytest.raises(ResyncError, match="asked for twice"):
        actions.do_request_resyncs(checked)
    assert not ResyncRequest.objects.exists()


def test_it_stores_a_requests_steps_as_bulk_create_would(cast):
    """add_pending (one INSERT of arrays on PostgreSQL) fills every other column with its
    field's default, as the ORM's bulk_create does: held to it column by column."""
    from resync.models import SyncObject

    request = ResyncRequest.objects.create(district=cast.district, school_year=2027)
    objects = list(SyncObject.objects.order_by("pk")[:3])
    DISBatchHistory.objects.add_pending(
        [(request.pk, cast.district.pk, 2027, o.pk, i) for i, o in enumerate(objects)]
    )
    DISBatchHistory.objects.bulk_create(
        DISBatchHistory(request=request, district=cast.district, school_year=2027, sync_object=o, layer=i)
        for i, o in enumerate(objects)
    )
    fields = [f.attname for f in DISBatchHistory._meta.concrete_fields if not f.primary_key]
    rows = list(DISBatchHistory.objects.filter(request=request).order_by("pk").values_list(*fields))
    assert len(rows) == 6
    assert rows[:3] == rows[3:]
    assert rows[0][fields.index("status")] == "pending" and rows[2][fields.index("layer")] == 2
