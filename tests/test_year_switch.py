"""The year switch: the end-of-year rule, the start-of-year reminder, and the state's
view of both mandatory full resyncs per district."""

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection

from alerts.models import ProcessAlert
from history.models import DISBatchHistory, StepStatus
from resync import actions, rights
from resync.models import District, DistrictRecord

from .conftest import BOTH, add, chain, run_queue

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)

PAGE = "/admin/verification/schoolyearswitch/"
REFUSED = r"District 101 has no finished full resync of 2027{}: run the end-of-year full resync of 2027 before switching to 2028\."
SINCE = r" that started after its last data change \(\d{4}-\d\d-\d\d \d\d:\d\d\)"


def resync(district, objects=None, year=None):
    request = actions.do_request_resync(actions.check_resync(district, year, objects, False))
    run_queue()
    request.refresh_from_db()
    return request


def switch(district, user=None) -> District:
    return actions.do_year_switch(actions.check_year_switch(district, user))


def test_it_refuses_without_a_full_resync_of_the_current_year(district, queue):
    with pytest.raises(actions.ResyncError, match=REFUSED.format("")):
        actions.check_year_switch(district)  # no data and no resync at all
    chain(district)
    resync(district, ["District", "School"])  # partial: does not count
    resync(district, year=2028)  # another year: does not count
    with pytest.raises(actions.ResyncError, match=REFUSED.format(SINCE)):
        actions.check_year_switch(district)
    assert District.objects.get(pk=district.pk).scope_year == 2027


def test_it_refuses_when_the_data_changed_after_the_last_full_resync(district, queue):
    chain(district)
    request = resync(district)
    assert actions.check_year_switch(district).end_of_year == request
    record = DistrictRecord.objects.get(sync_object__name="School")
    record.payload = {"name": "Renamed"}
    record.save()
    with pytest.raises(actions.ResyncError, match=REFUSED.format(SINCE)):
        actions.check_year_switch(district)
    again = resync(district)
    assert actions.check_year_switch(district).end_of_year == again


def test_it_does_not_count_a_full_resync_with_a_failed_step(district, queue):
    chain(district)
    request = resync(district)
    DISBatchHistory.objects.filter(request=request, sync_object__name="School").update(
        status=StepStatus.FAILED
    )
    with pytest.raises(actions.ResyncError, match=REFUSED.format(SINCE)):
        actions.check_year_switch(district)


def test_it_switches_and_reminds_the_district_to_run_the_start_of_year_resync(tool_cast, queue):
    chain(tool_cast.a)
    end = resync(tool_cast.a)
    switched = switch(tool_cast.a, tool_cast.admin_a)
    assert (switched.scope_year, switched.end_of_year_request) == (2028, end)
    assert switched.year_switched_at > end.finished_at
    assert District.objects.get(pk=tool_cast.a.pk).scope_year == 2028
    alerts = ProcessAlert.objects.filter(name="Start-of-Year Resync Needed")
    assert set(alerts.values_list("user__username", flat=True)) == {"stella", "alice", "bob"}
    assert alerts.first().message == (
        "District 101 Adair County now syncs school year 2027-2028: run the start-of-year full resync of 2028."
    )
    assert actions.start_of_year_resync(switched) is None
    with pytest.raises(actions.ResyncError, match="no finished full resync of 2028"):
        actions.check_year_switch(switched)  # the next switch needs a full resync of 2028
    start = resync(switched)
    assert actions.start_of_year_resync(District.objects.get(pk=tool_cast.a.pk)) == start


def test_it_switches_once_even_when_asked_twice(district, queue):
    chain(district)
    resync(district)
    first = actions.check_year_switch(district)
    second = actions.check_year_switch(district)
    actions.do_year_switch(first)
    with pytest.raises(actions.ResyncError, match="District 101 already syncs 2028."):
        actions.do_year_switch(second)
    assert District.objects.get(pk=district.pk).scope_year == 2028


def test_it_needs_the_year_switch_right(tool_cast, queue):
    with pytest.raises(rights.RightsError, match="Switching the school year needs the year switch right."):
        actions.check_year_switch(tool_cast.a, tool_cast.limited_a)
    with pytest.raises(rights.RightsError, match="You have no right to manage district 101."):
        actions.check_year_switch(tool_cast.a, tool_cast.admin_b)


def test_the_command_checks_and_switches(district, queue, capsys):
    with pytest.raises(CommandError, match=REFUSED.format("")):
        call_command("year_switch", district="101", check=True)
    chain(district)
    request = resync(district)
    call_command("year_switch", district="101", check=True)
    assert (
        f"District 101 may switch to 2028: full resync {request.pk} of 2027 finished"
        in capsys.readouterr().out
    )
    assert District.objects.get(pk=district.pk).scope_year == 2027
    call_command("year_switch", district="101")
    assert "District 101 now syncs 2028" in capsys.readouterr().out
    assert District.objects.get(pk=district.pk).scope_year == 2028
    with pytest.raises(CommandError, match="No district with code '999'."):
        call_command("year_switch", district="999")


# ---- the admin page: the state's overview and the action ---------------------------------


def action(client, *districts):
    return client.post(
        PAGE, {"action": "switch_year", "_selected_action": [d.pk for d in districts]}, follow=True
    )


def test_the_state_sees_both_mandatory_resyncs_per_district(client, tool_cast, queue):
    chain(tool_cast.a)
    chain(tool_cast.b)
    end = resync(tool_cast.a)
    client.force_login(tool_cast.state)
    html = client.get(PAGE).content.decode()
    assert html.count('alt="True"') == 1 and html.count('alt="False"') == 1  # A ready, B not
    text = action(client, tool_cast.a, tool_cast.b).content.decode()
    assert "District 101 now syncs 2028: alert sent." in text
    assert "District 202 has no finished full resync of 2027" in text
    html = client.get(PAGE).content.decode()
    assert f"Resync {end.pk} of 2027, finished" in html
    assert html.count("Missing") == 1  # A's start-of-year resync
    start = resync(District.objects.get(pk=tool_cast.a.pk))
    html = client.get(PAGE).content.decode()
    assert "Missing" not in html and f">Resync {start.pk}</a>" in html


def test_the_district_switches_its_own_year_from_the_admin(client, tool_cast, queue):
    chain(tool_cast.a)
    resync(tool_cast.a)
    client.force_login(tool_cast.admin_a)
    html = client.get(PAGE).content.decode()
    assert "Adair County" in html and "Boone County" not in html
    assert "District 101 now syncs 2028" in action(client, tool_cast.a).content.decode()
    assert District.objects.get(pk=tool_cast.a.pk).scope_year == 2028


def test_it_keeps_the_switch_from_outsiders(client, tool_cast, queue):
    chain(tool_cast.a)
    resync(tool_cast.a)
    response = client.get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    client.force_login(tool_cast.limited_a)  # may resync A, but holds no year switch right
    assert client.get(PAGE).status_code == 403
    assert action(client, tool_cast.a).status_code == 403
    client.force_login(tool_cast.admin_b)
    assert "Adair County" not in client.get(PAGE).content.decode()
    action(client, tool_cast.a)
    assert District.objects.get(pk=tool_cast.a.pk).scope_year == 2027
    assert not ProcessAlert.objects.filter(name="Start-of-Year Resync Needed").exists()


def test_the_district_form_leaves_the_year_to_the_switch(client, district):
    client.force_login(User.objects.create_superuser("root", "r@example.org", "pw"))
    url = f"/admin/resync/district/{district.pk}/change/"
    response = client.post(
        url,
        {
            "state": district.state_id,
            "code": "101",
            "name": "Adair",
            "scope_year": "2031",
            "sync_next_year": "on",
        },
    )
    assert response.status_code == 302
    district.refresh_from_db()
    assert (district.name, district.scope_year) == ("Adair", 2027)


def test_it_lists_the_overview_in_constant_queries(client, tool_cast, queue, django_assert_max_num_queries):
    chain(tool_cast.a)
    client.force_login(tool_cast.state)
    connection.queries_log.clear()
    with django_assert_max_num_queries(30) as few:
        assert client.get(PAGE).status_code == 200
    baseline = len(few.captured_queries)
    assert baseline > 0
    for i in range(5):
        d = District.objects.create(state=tool_cast.a.state, code=f"3{i}", name=f"D{i}", scope_year=2027)
        add(d, "District", 1)
        resync(d)
        switch(d)
    connection.queries_log.clear()
    with django_assert_max_num_queries(baseline):
        html = client.get(PAGE).content.decode()
    assert html.count("Missing") == 5
