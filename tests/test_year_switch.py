"""The year switch: the end-of-year rule, the start-of-year reminder, and the state's
view of both mandatory full resyncs per district."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.utils import display_for_value
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from freezegun import freeze_time

from alerts.models import ProcessAlert
from core import timefmt
from core.errors import ResyncError, RightsError
from history.models import DISBatchHistory, StepStatus
from resync.models import District, DistrictRecord
from runner import lifecycle
from tool import actions
from yearswitch import actions as yearswitch

from .conftest import BOTH, COMMITTED, add, chain, run_queue

pytestmark = pytest.mark.django_db(databases=BOTH)
# COMMITTED: the tests whose full resyncs a worker runs (run_queue).

PAGE = "/admin/verification/schoolyearswitch/"
REFUSED = r"District 101 has no finished full resync of 2027{}: run the end-of-year full resync of 2027 before switching to 2028\."
SINCE = r" that started after its last data change \(\d{4}-\d\d-\d\d \d\d:\d\d C[SD]T\)"  # its zone, named


# The end-of-year rule compares times (a full resync counts if it started after the
# district's last data change): the clock stands still, and moves on only where a test
# says time passes, so no comparison hangs on how fast this machine is.
START = "2027-06-30 17:00:00"
_clock = None


@pytest.fixture(autouse=True)
def clock():
    global _clock
    with freeze_time(START, ignore=["_pytest"]) as frozen:  # pytest's durations keep the real clock
        _clock = frozen
        yield frozen
    _clock = None


def a_minute_later() -> None:
    _clock.tick(timedelta(minutes=1))


def resync(district, objects=None, year=None):
    """A district full resync, run by a worker, a minute after what came before it and
    a minute before what comes after it."""
    a_minute_later()
    request = actions.do_request_resync(actions.check_resync(district, year, objects, False))
    run_queue()
    request.refresh_from_db()
    a_minute_later()
    return request


def switch(district, user=None) -> District:
    return yearswitch.do_year_switch(yearswitch.check_year_switch(district, user))


@COMMITTED
def test_it_refuses_without_a_full_resync_of_the_current_year(district, queue):
    with pytest.raises(ResyncError, match=REFUSED.format("")):
        yearswitch.check_year_switch(district)  # no data and no resync at all
    chain(district)
    resync(district, ["District", "School"])  # partial: does not count
    resync(district, year=2028)  # another year: does not count
    with pytest.raises(ResyncError, match=REFUSED.format(SINCE)):
        yearswitch.check_year_switch(district)
    assert District.objects.get(pk=district.pk).scope_year == 2027


@COMMITTED
def test_it_refuses_when_the_data_changed_after_the_last_full_resync(district, queue):
    chain(district)
    request = resync(district)
    assert yearswitch.check_year_switch(district).end_of_year == request
    record = DistrictRecord.objects.get(sync_object__name="School")
    record.payload = {"name": "Renamed"}
    record.save()
    with pytest.raises(ResyncError, match=REFUSED.format(SINCE)) as refused:
        yearswitch.check_year_switch(district)
    record.refresh_from_db()
    assert record.changed_at == datetime(2027, 6, 30, 17, 2, tzinfo=UTC)  # two minutes on: the change
    assert f"({timefmt.when(record.changed_at, district)})" in refused.value.args[0]
    again = resync(district)
    assert yearswitch.check_year_switch(district).end_of_year == again


def fail_school_steps(monkeypatch) -> None:
    run_step = lifecycle.move_records

    def failing(step, **kwargs):
        if step.sync_object.name == "School":
            raise RuntimeError("the state database went away")
        return run_step(step, **kwargs)

    monkeypatch.setattr(lifecycle, "move_records", failing)


@COMMITTED
def test_it_does_not_count_a_full_resync_with_a_failed_step(district, queue, monkeypatch):
    chain(district)
    fail_school_steps(monkeypatch)
    request = resync(district)
    assert (
        DISBatchHistory.objects.get(request=request, sync_object__name="School").status == StepStatus.FAILED
    )
    with pytest.raises(ResyncError, match=REFUSED.format(SINCE)):
        yearswitch.check_year_switch(district)


@COMMITTED
def test_it_keeps_refusing_once_the_failed_steps_history_is_deleted(client, tool_cast, queue, monkeypatch):
    chain(tool_cast.district)
    fail_school_steps(monkeypatch)
    request = resync(tool_cast.district)
    failed = DISBatchHistory.objects.get(request=request, status=StepStatus.FAILED)
    client.force_login(tool_cast.alice)  # history D, as every district administrator
    client.post(f"/admin/history/disbatchhistory/{failed.pk}/delete/", {"post": "yes"})
    assert not DISBatchHistory.objects.filter(pk=failed.pk).exists()
    with pytest.raises(ResyncError, match=REFUSED.format(SINCE)):
        yearswitch.check_year_switch(tool_cast.district)
    assert 'alt="True"' not in client.get(PAGE).content.decode()


@COMMITTED
def test_it_counts_only_the_districts_own_full_resyncs(client, tool_cast, queue):
    """A state full resync neither allows the switch nor shows on the district's page:
    counting it would tell the district the state had asked for every object."""
    chain(tool_cast.district)
    client.force_login(tool_cast.alice)

    def rows() -> str:
        html = client.get(PAGE).content.decode()
        return re.search(r'<table id="result_list">.*</table>', html, re.S)[0]

    before = rows()
    checked = actions.check_resync(
        tool_cast.district, None, None, False, user=tool_cast.stella, level="state"
    )
    state = actions.do_request_resync(checked)
    assert rows() == before
    run_queue()
    state.refresh_from_db()
    assert state.status == "finished" and state.outcome == "green"
    assert rows() == before  # during and after: the same rows
    for user in (tool_cast.alice, tool_cast.stella, None):
        with pytest.raises(ResyncError, match=REFUSED.format(SINCE)):
            yearswitch.check_year_switch(tool_cast.district, user)
    assert "has no finished full resync of 2027" in action(client, tool_cast.district).content.decode()
    own = resync(tool_cast.district)
    assert yearswitch.check_year_switch(tool_cast.district, tool_cast.alice).end_of_year == own


@COMMITTED
def test_it_switches_and_reminds_the_district_to_run_the_start_of_year_resync(tool_cast, queue):
    chain(tool_cast.district)
    end = resync(tool_cast.district)
    switched = switch(tool_cast.district, tool_cast.alice)
    assert (switched.scope_year, switched.end_of_year_request) == (2028, end)
    assert switched.year_switched_at > end.finished_at
    assert District.objects.get(pk=tool_cast.district.pk).scope_year == 2028
    alerts = ProcessAlert.objects.filter(name="Start-of-Year Resync Needed")
    assert set(alerts.values_list("user__username", flat=True)) == {"stella", "alice", "bob"}
    assert alerts.first().message == (
        "District 101 Adair County now syncs school year 2027-2028: run the start-of-year full resync of 2028."
    )
    assert yearswitch.start_of_year_resync(switched) is None
    with pytest.raises(
        ResyncError, match="switched to 2028 on .*: run the start-of-year full resync of 2028"
    ):
        yearswitch.check_year_switch(switched)  # the next switch needs a full resync of 2028
    start = resync(switched)
    assert yearswitch.start_of_year_resync(District.objects.get(pk=tool_cast.district.pk)) == start


@COMMITTED
def test_it_switches_once_even_when_asked_twice(district, queue):
    chain(district)
    resync(district)
    first = yearswitch.check_year_switch(district)
    second = yearswitch.check_year_switch(district)
    yearswitch.do_year_switch(first)
    with pytest.raises(ResyncError, match="District 101 already syncs 2028."):
        yearswitch.do_year_switch(second)
    assert District.objects.get(pk=district.pk).scope_year == 2028


def test_it_needs_the_year_switch_right(tool_cast, queue):
    with pytest.raises(RightsError, match="Switching the school year needs the year switch right."):
        yearswitch.check_year_switch(tool_cast.district, tool_cast.bob)
    with pytest.raises(RightsError, match="You have no right to manage district 101."):
        yearswitch.check_year_switch(tool_cast.district, tool_cast.charlie)


@COMMITTED
def test_the_command_checks_and_switches(district, queue, capsys):
    with pytest.raises(CommandError, match=REFUSED.format("")):
        call_command("year_switch", district="101", check=True)
    chain(district)
    request = resync(district)
    call_command("year_switch", district="101", check=True)
    assert (
        f"District 101 may switch to 2028: full resync of 2026-2027 finished "
        f"{timefmt.when(request.finished_at, district)}." in capsys.readouterr().out
    )
    assert District.objects.get(pk=district.pk).scope_year == 2027
    call_command("year_switch", district="101")
    assert "District 101 now syncs 2028" in capsys.readouterr().out
    assert District.objects.get(pk=district.pk).scope_year == 2028
    with pytest.raises(CommandError, match="No district with code '999'."):
        call_command("year_switch", district="999")


@COMMITTED
def test_the_command_asks_on_a_terminal_and_switches_only_on_yes(district, queue, monkeypatch, capsys):
    chain(district)
    resync(district)
    asked = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "no")
    with pytest.raises(CommandError, match="Not switched."):
        call_command("year_switch", district="101")
    assert "will sync 2028 from now on; this cannot be undone" in asked[0]
    assert District.objects.get(pk=district.pk).scope_year == 2027
    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    call_command("year_switch", district="101")
    assert District.objects.get(pk=district.pk).scope_year == 2028


# ---- the admin page: the state's overview and the action ---------------------------------


def action(client, *districts, confirmed=True):
    """The switch action on the overview; `confirmed`: as its confirmation page's Yes posts it."""
    data = {"action": "switch_year", "_selected_action": [d.pk for d in districts]}
    return client.post(PAGE, {**data, "post": "yes"} if confirmed else data, follow=True)


@COMMITTED
def test_it_asks_before_switching_and_says_what_will_happen(client, tool_cast, queue):
    chain(tool_cast.district)
    chain(tool_cast.other)
    end = resync(tool_cast.district)
    client.force_login(tool_cast.stella)
    page = action(client, tool_cast.district, tool_cast.other, confirmed=False)
    html = page.content.decode()
    assert page.status_code == 200 and "cannot be undone" in html
    assert "101 Adair County: 2027 &rarr; <strong>2028</strong>" in html
    # Named by its year and finish time in the district's zone, not its id (issue 14, item 8).
    assert (
        f"end-of-year full resync of 2026-2027, finished {timefmt.when(end.finished_at, end.district)})"
        in html
    )
    assert "start-of-year full resync" in html
    assert "202 Boone County: <strong>not switched</strong>. District 202 has no finished full resync" in html
    assert "Yes, switch 1 district" in html
    # The confirmation's form posts back only the district that may switch.
    form = re.search(r'<form method="post">(.*?)</form>', html, re.S)[1]
    assert re.findall(r'name="_selected_action" value="(\d+)"', form) == [str(tool_cast.district.pk)]
    assert not District.objects.filter(scope_year=2028).exists()  # asking changed nothing
    assert not ProcessAlert.objects.filter(name="Start-of-Year Resync Needed").exists()
    done = client.post(
        PAGE,
        {"action": "switch_year", "_selected_action": [tool_cast.district.pk], "post": "yes"},
        follow=True,
    )
    assert "District 101 now syncs 2028: alert sent." in done.content.decode()


@COMMITTED
def test_it_refuses_a_second_switch_before_the_start_of_year_resync(client, tool_cast, queue):
    chain(tool_cast.district)
    tool_cast.district.sync_next_year = True
    tool_cast.district.save()
    resync(tool_cast.district, year=2028)  # the next year, synced ahead, before the switch
    resync(tool_cast.district)
    switch(tool_cast.district)
    district = District.objects.get(pk=tool_cast.district.pk)
    with pytest.raises(
        ResyncError, match=r"District 101 switched to 2028 on .*: run the start-of-year full resync of 2028"
    ):
        yearswitch.check_year_switch(district)
    client.force_login(tool_cast.stella)
    html = client.get(PAGE).content.decode()
    assert html.count('alt="True"') == 0  # the overview says the same
    start = resync(district)
    assert yearswitch.check_year_switch(district).end_of_year == start
    assert 'alt="True"' in client.get(PAGE).content.decode()


@COMMITTED
def test_the_state_sees_both_mandatory_resyncs_per_district(client, tool_cast, queue):
    chain(tool_cast.district)
    chain(tool_cast.other)
    end = resync(tool_cast.district)
    client.force_login(tool_cast.stella)
    html = client.get(PAGE).content.decode()
    assert html.count('alt="True"') == 1 and html.count('alt="False"') == 1  # A ready, B not
    text = action(client, tool_cast.district, tool_cast.other).content.decode()
    assert "District 101 now syncs 2028: alert sent." in text
    assert "District 202 has no finished full resync of 2027" in text
    html = client.get(PAGE).content.decode()
    assert "Resync of 2026-2027, finished " in html and f"Resync {end.pk} " not in html
    assert html.count("Missing") == 1  # A's start-of-year resync
    start = resync(District.objects.get(pk=tool_cast.district.pk))
    html = client.get(PAGE).content.decode()
    assert "Missing" not in html and f">Resync {start.pk}</a>" in html


@COMMITTED
def test_the_district_switches_its_own_year_from_the_admin(client, tool_cast, queue):
    chain(tool_cast.district)
    resync(tool_cast.district)
    client.force_login(tool_cast.alice)
    html = client.get(PAGE).content.decode()
    assert "Adair County" in html and "Boone County" not in html
    assert "District 101 now syncs 2028" in action(client, tool_cast.district).content.decode()
    assert District.objects.get(pk=tool_cast.district.pk).scope_year == 2028


@COMMITTED
def test_the_admin_switch_is_written_to_the_districts_history(client, tool_cast, queue):
    from django.contrib.admin.models import CHANGE, LogEntry

    chain(tool_cast.district)
    resync(tool_cast.district)
    client.force_login(tool_cast.alice)
    action(client, tool_cast.district)
    (entry,) = LogEntry.objects.all()
    assert (entry.user, entry.action_flag) == (tool_cast.alice, CHANGE)
    assert entry.object_id == str(tool_cast.district.pk)
    assert entry.get_change_message() == "Switched the school year from 2027 to 2028."


@COMMITTED
def test_it_keeps_the_switch_from_outsiders(client, tool_cast, queue):
    chain(tool_cast.district)
    resync(tool_cast.district)
    response = client.get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    client.force_login(tool_cast.bob)  # may resync A, but holds no year switch right
    assert client.get(PAGE).status_code == 403
    assert action(client, tool_cast.district).status_code == 403
    client.force_login(tool_cast.charlie)
    assert "Adair County" not in client.get(PAGE).content.decode()
    action(client, tool_cast.district)
    assert District.objects.get(pk=tool_cast.district.pk).scope_year == 2027
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
            "time_zone": "America/Chicago",
        },
    )
    assert response.status_code == 302
    district.refresh_from_db()
    assert (district.name, district.scope_year) == ("Adair", 2027)


@COMMITTED
def test_it_lists_the_overview_in_constant_queries(client, tool_cast, queue, django_assert_max_num_queries):
    chain(tool_cast.district)
    client.force_login(tool_cast.stella)
    connection.queries_log.clear()
    with django_assert_max_num_queries(30) as few:
        assert client.get(PAGE).status_code == 200
    baseline = len(few.captured_queries)
    assert baseline > 0
    for i in range(5):
        d = District.objects.create(
            state=tool_cast.district.state, code=f"3{i}", name=f"D{i}", scope_year=2027
        )
        add(d, "District", 1)
        resync(d)
        switch(d)
    connection.queries_log.clear()
    with django_assert_max_num_queries(baseline):
        html = client.get(PAGE).content.decode()
    assert html.count("Missing") == 5


# ---- a deleted record is a data change too -------------------------------------------------

DELETED = r" that started after its last data change \((\d{4}-\d\d-\d\d \d\d:\d\d C[SD]T), when records were deleted\)"


def deleted_at(district):
    return District.objects.values_list("records_deleted_at", flat=True).get(pk=district.pk)


@COMMITTED
def test_it_refuses_when_a_record_was_deleted_after_the_last_full_resync(district, queue):
    chain(district)
    resync(district)
    assert yearswitch.check_year_switch(district)
    DistrictRecord.objects.get(sync_object__name="PersonIdentity").delete()  # the state still holds it
    with pytest.raises(ResyncError, match=REFUSED.format(DELETED)) as refused:
        yearswitch.check_year_switch(district)
    when = timefmt.when(deleted_at(district), district)
    assert refused.value.args[0].count(f"({when}, when records were deleted)") == 1
    assert yearswitch.last_change(district) == deleted_at(district)
    again = resync(district)  # removes the record at the state
    assert yearswitch.check_year_switch(district).end_of_year == again
    assert switch(district).scope_year == 2028


@COMMITTED
def test_the_command_refuses_after_a_queryset_deletion(district, queue, capsys):
    chain(district)
    resync(district)
    call_command("year_switch", district="101", check=True)
    district.records.filter(sync_object__name__in=["Calendar", "ScheduleStructure"]).delete()
    with pytest.raises(CommandError, match=REFUSED.format(DELETED)):
        call_command("year_switch", district="101", check=True)
    with pytest.raises(CommandError, match=REFUSED.format(DELETED)):
        call_command("year_switch", district="101")
    assert District.objects.get(pk=district.pk).scope_year == 2027
    again = resync(district)
    call_command("year_switch", district="101")
    assert "District 101 now syncs 2028" in capsys.readouterr().out
    assert District.objects.get(pk=district.pk).end_of_year_request == again


def test_it_counts_the_later_of_a_change_and_a_deletion(district, queue):
    chain(district)
    record = DistrictRecord.objects.get(sync_object__name="School")
    DistrictRecord.objects.filter(sync_object__name="PersonIdentity").delete()
    a_minute_later()
    record.save()  # changed after the deletion: the change is the last one
    assert yearswitch.last_change(district) == DistrictRecord.objects.get(pk=record.pk).changed_at
    assert deleted_at(district) < yearswitch.last_change(district)
    DistrictRecord.objects.filter(district=district).delete()  # no record left: the deletion counts
    assert yearswitch.last_change(district) == deleted_at(district) is not None
    with pytest.raises(ResyncError, match=REFUSED.format(DELETED)):
        yearswitch.check_year_switch(district)


def statements(captured) -> list[str]:
    """The SQL run, without transaction control (PostgreSQL logs BEGIN and COMMIT)."""
    control = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK")
    return [q["sql"] for q in captured.captured_queries if not q["sql"].upper().startswith(control)]


def test_it_stamps_a_queryset_deletion_in_one_statement(district, other_district):
    third = District.objects.create(state=district.state, code="303", name="Casey County", scope_year=2027)
    for d in (district, other_district, third):
        for rid in range(1, 6):
            add(d, "District", rid)
    doomed = DistrictRecord.objects.filter(district__in=[district, other_district], record_id__gte=3)
    with CaptureQueriesContext(connection) as captured:
        assert doomed.delete()[0] == 6
    sql = statements(captured)
    assert len(sql) == 2, sql  # one UPDATE of both districts, one DELETE of the six rows
    assert sql[0].startswith("UPDATE") and "resync_district" in sql[0]
    assert sql[1].startswith("DELETE")
    assert deleted_at(district) == deleted_at(other_district) is not None
    assert deleted_at(third) is None
    with CaptureQueriesContext(connection) as captured:
        DistrictRecord.objects.filter(record_id=99).delete()  # nothing to delete: nothing stamped
    assert len(statements(captured)) == 2
    assert deleted_at(third) is None
    record = DistrictRecord.objects.get(district=third, record_id=1)
    with CaptureQueriesContext(connection) as captured:
        record.delete()
    assert [q.split()[0] for q in statements(captured)] == ["UPDATE", "DELETE"]
    assert deleted_at(third) is not None
    assert DistrictRecord.objects.filter(district=third).count() == 4
    third.delete()  # a whole district goes with its records, stamp or not
    assert not DistrictRecord.objects.filter(district_id=third.pk).exists()


@COMMITTED
def test_the_overview_shows_a_deletion_as_the_last_change(client, tool_cast, queue):
    chain(tool_cast.district)
    chain(tool_cast.other)
    resync(tool_cast.district)
    resync(tool_cast.other)
    DistrictRecord.objects.filter(district=tool_cast.district, sync_object__name="PersonIdentity").delete()
    DistrictRecord.objects.filter(district=tool_cast.other).delete()  # B keeps no record at all
    client.force_login(tool_cast.stella)
    response = client.get(PAGE)
    shown = {d.code: d.changed for d in response.context["cl"].result_list}
    assert shown == {"101": deleted_at(tool_cast.district), "202": deleted_at(tool_cast.other)}
    assert shown["101"] == yearswitch.last_change(tool_cast.district)  # the page and the rule agree
    html = response.content.decode()
    assert html.count('alt="True"') == 0 and html.count('alt="False"') == 2  # neither is ready
    for d in (tool_cast.district, tool_cast.other):
        assert display_for_value(deleted_at(d), "—") in html
    text = action(client, tool_cast.district).content.decode()
    assert "District 101 has no finished full resync of 2027 that started after its last data change" in text
    assert "when records were deleted" in text
    assert District.objects.get(pk=tool_cast.district.pk).scope_year == 2027
    resync(tool_cast.district)
    html = client.get(PAGE).content.decode()
    assert html.count('alt="True"') == 1 and html.count('alt="False"') == 1  # A ready again, B not
    assert "District 101 now syncs 2028" in action(client, tool_cast.district).content.decode()
