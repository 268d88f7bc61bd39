"""The Verification Summary's admin pages: run, drill down, one-click resync, the state's
switch; outsiders and constant queries."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from resync.models import ResyncRequest
from tool import actions
from verification.models import (
    DISVerificationDifference,
    DISVerificationResult,
    VerificationRun,
    VerificationSetting,
)

from .conftest import BOTH, add, chain, run_queue

# Transactional: the verifications and resyncs here are run by a worker, and RQ enqueues a job on commit.
pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)

RUNS = "/admin/verification/verificationrun/"
RESULTS = "/admin/verification/disverificationresult/"
DIFFERENCES = "/admin/verification/disverificationdifference/"
SETTING = "/admin/verification/verificationsetting/"


def drifted(district) -> None:
    """A district fully resynced, then one new enrollment and one state-excluded calendar."""
    chain(district)
    actions.do_request_resync(actions.check_resync(district, None, None, False))
    run_queue()
    add(district, "Enrollment", 1, {"PersonIdentity": 1})
    add(district, "Calendar", 2, {"School": 1}, excluded=True)


def run_from_admin(client, user, district="101", objects=("Calendar", "Enrollment")) -> VerificationRun:
    client.force_login(user)
    response = client.post(RUNS + "add/", {"district": district, "objects": list(objects)})
    run = VerificationRun.objects.latest("id")
    assert response.status_code == 302 and response["Location"] == f"{RUNS}{run.pk}/change/"
    run_queue()
    run.refresh_from_db()
    return run


def test_it_runs_drills_down_and_resyncs_the_differences_in_one_click(client, tool_cast, queue):
    drifted(tool_cast.district)
    client.force_login(tool_cast.alice)
    form = client.get(RUNS + "add/").content.decode()
    assert 'value="101"' in form and 'value="202"' not in form
    run = run_from_admin(client, tool_cast.alice)
    assert (run.status, run.sync_objects, run.requested_by) == (
        "finished",
        ["Calendar", "Enrollment"],
        tool_cast.alice,
    )
    page = client.get(f"{RUNS}{run.pk}/change/").content.decode()
    assert 'id="resync-differences"' in page
    enrollment = DISVerificationResult.objects.get(run=run, sync_object__name="Enrollment")
    assert f"?result__id__exact={enrollment.pk}" in page
    rows = client.get(DIFFERENCES, {"result__id__exact": enrollment.pk}).content.decode()
    assert rows.count('<td class="field-kind">') == 1
    assert '<td class="field-kind">Only at the district</td>' in rows
    refused = client.get(DIFFERENCES, {"kind": "not_allowed"}).content.decode()
    assert refused.count('<td class="field-kind">') == 1
    assert (
        '<td class="field-kind">Not allowed to sync</td><td class="field-reason">State-excluded record</td>'
        in refused
    )

    before = ResyncRequest.objects.count()
    asked = client.get(f"{RUNS}{run.pk}/resync/").content.decode()  # the page's link asks first
    assert ResyncRequest.objects.count() == before
    assert '<ul id="differing"><li>Enrollment</li></ul>' in asked
    assert (
        "<li>District</li><li>School</li><li>Calendar</li><li>ScheduleStructure</li><li>PersonIdentity</li>"
        in asked
    )
    assert (
        "6 objects will run, in this order: District → School → Calendar → ScheduleStructure → "
        "PersonIdentity → Enrollment." in asked
    )
    assert 'value="Yes, send 6 objects"' in asked
    response = client.post(f"{RUNS}{run.pk}/resync/", follow=True)
    request = ResyncRequest.objects.latest("id")
    assert (request.objects_asked, request.check_dependencies, request.requested_by) == (
        ["Enrollment"],  # the calendar is not allowed to sync: nothing to resync there
        True,
        tool_cast.alice,
    )
    assert (
        f"Resync {request.pk} sent with Check Dependencies: District, School, Calendar, ScheduleStructure, PersonIdentity, Enrollment."
        in response.content.decode()
    )
    run_queue()
    again = run_from_admin(client, tool_cast.alice)
    counts = DISVerificationResult.objects.filter(run=again).values_list(
        "only_district", "only_state", "different", "not_allowed"
    )
    assert sorted(counts) == [(0, 0, 0, 0), (0, 0, 0, 1)]


def test_it_resyncs_from_the_list_action_and_names_a_run_with_nothing_to_fix(client, tool_cast, queue):
    drifted(tool_cast.district)
    run = run_from_admin(client, tool_cast.stella)
    calm = run_from_admin(client, tool_cast.stella, objects=["Calendar"])
    response = client.post(
        RUNS, {"action": "resync_differences", "_selected_action": [run.pk, calm.pk]}, follow=True
    )
    text = response.content.decode()
    request = ResyncRequest.objects.latest("id")
    assert f"Verification {run.pk}: resync {request.pk} sent." in text
    assert f"Verification {calm.pk}: Verification {calm.pk} found nothing a resync would fix." in text
    assert request.level == "state"  # the state's one-click is a state resync request
    assert VerificationRun.objects.get(pk=run.pk).resync_request == request


def test_the_state_switches_district_initiated_verification_off(client, tool_cast, queue):
    client.force_login(tool_cast.stella)
    setting = VerificationSetting.current()
    assert client.get(SETTING).status_code == 200
    response = client.post(f"{SETTING}{setting.pk}/change/", {"district_initiated": ""})
    assert response.status_code == 302
    setting.refresh_from_db()
    assert (setting.district_initiated, setting.changed_by) == (False, tool_cast.stella)
    client.force_login(tool_cast.alice)
    assert client.get(RUNS + "add/").status_code == 403
    assert client.post(RUNS + "add/", {"district": "101"}).status_code == 403
    assert client.get(RUNS).status_code == 200  # past results stay readable
    assert client.get(SETTING).status_code == 403
    assert client.post(f"{SETTING}{setting.pk}/change/", {"district_initiated": "on"}).status_code == 403
    run_from_admin(client, tool_cast.stella, objects=["District"])  # the state still verifies
    assert VerificationRun.objects.count() == 1


def test_it_keeps_every_page_from_outsiders(client, tool_cast, queue):
    drifted(tool_cast.district)
    run = run_from_admin(client, tool_cast.alice)
    result = DISVerificationResult.objects.filter(run=run).first()
    difference = DISVerificationDifference.objects.first()
    pages = [
        RUNS,
        RUNS + "add/",
        f"{RUNS}{run.pk}/change/",
        RESULTS,
        f"{RESULTS}{result.pk}/change/",
        DIFFERENCES,
        f"{DIFFERENCES}{difference.pk}/change/",
        SETTING,
    ]
    client.logout()
    for url in pages + [f"{RUNS}{run.pk}/resync/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    client.force_login(tool_cast.bob)  # may resync district A, but holds no verification right
    for url in pages:
        assert client.get(url).status_code == 403, url
    assert client.post(f"{RUNS}{run.pk}/resync/").status_code == 403
    assert client.get(f"{RUNS}{run.pk}/resync/").status_code == 403
    assert client.post(RUNS + "add/", {"district": "101"}).status_code == 403
    client.force_login(tool_cast.charlie)  # another district's administrator
    for url in (
        f"{RUNS}{run.pk}/change/",
        f"{RESULTS}{result.pk}/change/",
        f"{DIFFERENCES}{difference.pk}/change/",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(f"{RUNS}{run.pk}/resync/").status_code == 404
    assert client.get(f"{RUNS}{run.pk}/resync/").status_code == 404
    assert client.post(f"{RUNS}{run.pk}/delete/", {"post": "yes"}).status_code == 404
    assert client.post(RUNS + "add/", {"district": "101"}).status_code == 404
    for url in (RUNS, RESULTS, DIFFERENCES):
        assert "Adair County" not in client.get(url).content.decode(), url
    client.post(RUNS, {"action": "resync_differences", "_selected_action": [run.pk]})
    assert ResyncRequest.objects.count() == 1  # only drifted()'s full resync
    assert VerificationRun.objects.count() == 1


@pytest.mark.parametrize("url", [RUNS, RESULTS, DIFFERENCES, SETTING])
def test_it_lists_in_constant_queries(client, tool_cast, queue, url, django_assert_max_num_queries):
    drifted(tool_cast.district)
    run_from_admin(client, tool_cast.stella)
    connection.queries_log.clear()  # a full log (9000) would make the capture count nothing
    with django_assert_max_num_queries(40) as few:
        assert client.get(url).status_code == 200
    baseline = len(few.captured_queries)  # read now: clearing the log empties the capture
    assert baseline > 0
    for i in range(3, 9):
        add(tool_cast.district, "Enrollment", i, {"PersonIdentity": 1})
        add(tool_cast.other, "District", i)
    run_from_admin(client, tool_cast.stella)
    run_from_admin(client, tool_cast.stella, district="202", objects=["District"])
    assert DISVerificationDifference.objects.count() >= 14
    connection.queries_log.clear()
    with django_assert_max_num_queries(baseline):
        assert client.get(url).status_code == 200


def test_it_deletes_runs_with_the_d_right_only(client, tool_cast, queue):
    chain(tool_cast.district)
    run = run_from_admin(client, tool_cast.alice, objects=["District"])
    assert client.post(f"{RUNS}{run.pk}/delete/", {"post": "yes"}).status_code == 403  # district: R and W
    client.force_login(tool_cast.stella)
    assert client.post(f"{RUNS}{run.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not VerificationRun.objects.exists() and not DISVerificationResult.objects.exists()


def test_it_loads_the_live_script_on_the_runs_pages(client, tool_cast, queue):
    chain(tool_cast.district)
    run = run_from_admin(client, tool_cast.alice, objects=["District"])
    page = client.get(f"{RUNS}{run.pk}/change/").content.decode()
    assert "resync/verification.js" in page
    assert f'<script id="verification-run" type="application/json">{run.pk}</script>' in page
    listing = client.get(RUNS).content.decode()
    assert "resync/verification.js" in listing and f'value="{run.pk}" class="action-select"' in listing


def test_it_keeps_the_states_runs_and_its_resyncs_from_the_district(client, tool_cast, queue, caplog):
    drifted(tool_cast.district)
    stella, alice = tool_cast.stella, tool_cast.alice
    own = run_from_admin(client, alice, objects=["Enrollment"])
    state_run = run_from_admin(client, stella)  # Calendar (only the state's run has it) and Enrollment
    assert (own.level, state_run.level) == ("district", "state")
    calendar = DISVerificationResult.objects.get(run=state_run, sync_object__name="Calendar")
    state_difference = DISVerificationDifference.objects.get(result=calendar)
    # The state resyncs its run's differences, and those of the district's run too.
    client.post(f"{RUNS}{state_run.pk}/resync/")
    # Both runs differ in Enrollment alone: the second click, seconds later, would be
    # refused as the same request sent twice (tool.actions.refuse_repeat) but for this.
    ResyncRequest.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    client.post(f"{RUNS}{own.pk}/resync/")
    state_request = ResyncRequest.objects.latest("id")
    assert state_request.level == "state"
    assert VerificationRun.objects.get(pk=own.pk).resync_request == state_request
    page = client.get(f"{RUNS}{own.pk}/change/").content.decode()
    assert f"Resync {state_request.pk}" in page  # the state sees the state's request
    listing = client.get(RUNS).content.decode()
    assert (
        '<td class="field-level">State</td>' in listing and '<td class="field-level">District</td>' in listing
    )

    client.force_login(alice)
    caplog.set_level("WARNING", logger="statesync.refusals")
    for url in (f"{RUNS}{state_run.pk}/change/", f"{RESULTS}{calendar.pk}/change/"):
        assert client.get(url).status_code == 404, url
    assert client.get(f"{DIFFERENCES}{state_difference.pk}/change/").status_code == 404
    assert client.post(f"{RUNS}{state_run.pk}/resync/").status_code == 404
    refusals = [r.getMessage() for r in caplog.records if r.name == "statesync.refusals"]
    assert refusals == [
        f"refused alice at admin: verification run {state_run.pk} (absent or not theirs)",
        f"refused alice at admin: DIS verification result {calendar.pk} (absent or not theirs)",
        f"refused alice at admin: DIS verification difference {state_difference.pk} (absent or not theirs)",
        f"refused alice at admin: verification {state_run.pk} (absent or not theirs)",
    ]
    listing = client.get(RUNS).content.decode()
    assert f'value="{own.pk}" class="action-select"' in listing
    assert f'value="{state_run.pk}" class="action-select"' not in listing
    assert "field-level" not in listing  # every run a district user sees is the district's
    for text in (listing, client.get(f"{RUNS}{own.pk}/change/").content.decode()):
        assert f"Resync {state_request.pk}" not in text  # not named: it is the state's
        assert f"/admin/resync/resyncrequest/{state_request.pk}/" not in text
    results = client.get(RESULTS).content.decode()
    assert f"?result__id__exact={calendar.pk}" not in results
    assert f"sync_object__id__exact={calendar.sync_object_id}" not in results  # nor among the filters
    differences = client.get(DIFFERENCES).content.decode()
    assert differences.count('<td class="field-kind">') == 1  # her own run's enrollment
    assert f"result__sync_object__id__exact={calendar.sync_object_id}" not in differences
    drilled = client.get(DIFFERENCES, {"result__id__exact": calendar.pk}).content.decode()
    assert '<td class="field-kind">' not in drilled
    before = ResyncRequest.objects.count()
    client.post(RUNS, {"action": "resync_differences", "_selected_action": [state_run.pk]})
    assert ResyncRequest.objects.count() == before
