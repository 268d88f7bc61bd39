"""Schedules (issue 15): a due occurrence fires once however many schedulers tick, as
an ordinary request marked with its schedule; paused ones fire nothing; missed ones
run once or are skipped; and only the right people schedule what."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rq.cron import CronScheduler

from history.models import DISBatchHistory
from resync.models import District, ResyncRequest
from schedules import actions, jobs
from schedules.models import Schedule, next_after
from tool import actions as tool_actions

from .conftest import BOTH, COMMITTED, add, run_queue

pytestmark = pytest.mark.django_db(databases=BOTH)

NIGHTLY = {"name": "Nightly", "district": "101", "objects": ["District"], "cron": "0 2 * * *",
           "time_zone": "America/Chicago"}  # fmt: skip


def make(user, due: dt.timedelta | None = dt.timedelta(seconds=-1), **fields) -> Schedule:
    """A schedule checked as its creator's, due `due` from now (past: due already)."""
    values = {
        "name": "Nightly",
        "cron": "0 2 * * *",
        "time_zone": "America/Chicago",
        "objects_asked": ["District"],
    }
    values.update(fields)
    if "state" not in fields:
        values.setdefault("district", District.objects.get(code="101"))
    schedule = actions.do_save(actions.check_schedule(Schedule(**values), user), user)
    if due is not None:
        Schedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now() + due)
    return schedule


def api(client, user, method: str, url: str, body=None):
    token = Token.objects.get_or_create(user=user)[0].key
    kwargs = {"content_type": "application/json"} if body is not None else {}
    return getattr(client, method)(url, body, headers={"authorization": f"Token {token}"}, **kwargs)


def test_it_reads_the_cron_in_the_schedules_own_zone():
    # 02:00 in Chicago is 08:00 UTC in winter (CST) and 07:00 in summer (CDT).
    winter = next_after("0 2 * * *", "America/Chicago", dt.datetime(2027, 1, 10, 12, tzinfo=dt.UTC))
    summer = next_after("0 2 * * *", "America/Chicago", dt.datetime(2027, 7, 10, 12, tzinfo=dt.UTC))
    assert (winter, summer) == (
        dt.datetime(2027, 1, 11, 8, tzinfo=dt.UTC),
        dt.datetime(2027, 7, 11, 7, tzinfo=dt.UTC),
    )


def test_it_runs_once_on_the_night_the_clock_shows_an_hour_twice():
    # 2027-11-07: Chicago's clock goes from 01:59 CDT back to 01:00 CST.
    first = next_after("30 1 * * *", "America/Chicago", dt.datetime(2027, 11, 6, 12, tzinfo=dt.UTC))
    second = next_after("30 1 * * *", "America/Chicago", first)
    assert (first, second) == (
        dt.datetime(2027, 11, 7, 6, 30, tzinfo=dt.UTC),  # 01:30 CDT
        dt.datetime(
            2027, 11, 8, 7, 30, tzinfo=dt.UTC
        ),  # the next night's 01:30 CST, not 01:30 CST that night
    )
    # And the hour the clock skips in spring runs at 03:00, once.
    spring = next_after("30 2 * * *", "America/Chicago", dt.datetime(2027, 3, 13, 12, tzinfo=dt.UTC))
    assert spring == dt.datetime(2027, 3, 14, 8, tzinfo=dt.UTC)


@COMMITTED  # two threads, each its own connection, must see the committed schedule
def test_it_fires_a_due_schedule_exactly_once_with_two_schedulers_ticking(cast, queue):
    add(cast.district, "District", 1)
    schedule = make(cast.stella)
    start = threading.Barrier(2)
    claimed = []

    def scheduler() -> None:
        try:
            start.wait()
            claimed.append(len(actions.tick()))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = ResyncRequest.objects.filter(schedule=schedule)
    assert sorted(claimed) == [0, 1]
    assert sent.count() == 1 == ResyncRequest.objects.count()
    request = sent.get()
    # An ordinary request: its creator's, at their level, with its steps in the history.
    assert (request.requested_by, request.level) == (cast.stella, ResyncRequest.Level.STATE)
    assert list(
        DISBatchHistory.objects.filter(request=request).values_list("sync_object__name", flat=True)
    ) == ["District"]
    schedule.refresh_from_db()
    assert schedule.next_run_at > timezone.now()
    assert schedule.last_message == "Sent 1 request(s)."
    # A third tick finds nothing due.
    assert actions.tick() == []


def test_it_fires_nothing_for_a_paused_schedule(cast):
    schedule = make(cast.stella)
    actions.do_pause(schedule, True)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now() - dt.timedelta(seconds=1))
    assert actions.tick() == []
    assert not ResyncRequest.objects.exists()


def test_it_resumes_from_the_next_occurrence_not_the_ones_it_slept_through(cast):
    schedule = make(cast.stella, due=dt.timedelta(days=-3))
    actions.do_pause(schedule, True)
    actions.do_pause(schedule, False)
    assert schedule.next_run_at > timezone.now()
    assert actions.tick() == []


@pytest.mark.parametrize("missed, sent", [("run_once", 1), ("skip", 0)])
def test_it_runs_a_missed_occurrence_once_or_skips_it_as_the_schedule_says(cast, missed, sent):
    # Due every hour, last claimed three hours ago: everything was down meanwhile.
    schedule = make(cast.stella, due=dt.timedelta(hours=-3), cron="0 * * * *", missed=missed)
    (fired,) = actions.tick()
    assert ResyncRequest.objects.filter(schedule=schedule).count() == sent
    schedule.refresh_from_db()
    assert schedule.next_run_at > timezone.now()  # the three missed hours count once at most
    assert fired.message.startswith("Sent 1" if sent else "Skipped the run due")
    assert actions.tick() == []


def test_it_sends_an_occurrence_due_outside_its_window_when_the_window_opens(cast):
    now = timezone.now()
    local = now.astimezone(dt.UTC)
    # A window that opens an hour from now and closes two hours from now (UTC).
    opens, closes = (local + dt.timedelta(hours=1)).time(), (local + dt.timedelta(hours=2)).time()
    schedule = make(cast.stella, time_zone="UTC", window_start=opens, window_end=closes)
    assert actions.tick(now) == []  # waits: still due
    assert Schedule.objects.get(pk=schedule.pk).next_run_at < now
    (fired,) = actions.tick(now + dt.timedelta(minutes=61))
    assert len(fired.requests) == 1


def test_it_resyncs_every_district_of_a_state(cast):
    schedule = make(cast.stella, state=cast.district.state, objects_asked=None)
    (fired,) = actions.tick()
    assert sorted(r.district.code for r in fired.requests) == ["101", "202"]
    assert all(r.full for r in fired.requests)
    assert schedule.requests.count() == 2


def test_it_records_why_a_district_was_refused_and_sends_the_others(cast):
    schedule = make(cast.stella, state=cast.district.state)
    cast.stella.is_active = False  # the creator left: their schedule sends nothing as them
    cast.stella.save()
    (fired,) = actions.tick()
    assert fired.requests == []
    assert (
        "Refused: 101: You have no right to resync district 101."
        in Schedule.objects.get(pk=schedule.pk).last_message
    )


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"cron": "61 2 * * *"}, "cron", "is not a cron expression"),
        ({"cron": "0 0 30 2 *"}, "cron", "never happens"),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "is not a time zone"),
        ({"state": "KY"}, "district", "not both"),
        ({"window_start": "22:00"}, "window_start", "needs both a start and an end"),
        ({"objects": ["Nonsense"]}, "objects", "Nonsense"),
        ({"missed": "twice"}, "missed", "twice"),
    ],
)
def test_it_refuses_a_bad_schedule_naming_the_problem(client, cast, change, field, words):
    response = api(client, cast.stella, "post", "/api/v1/schedules/", {**NIGHTLY, **change})
    assert response.status_code == 400, response.content
    assert words in str(response.json()[field])
    assert not Schedule.objects.exists()


def test_it_creates_one_by_api_with_its_next_run_in_its_zone(client, cast):
    response = api(client, cast.stella, "post", "/api/v1/schedules/", NIGHTLY)
    assert response.status_code == 201, response.content
    body = response.json()
    assert " 02:00 C" in body["next_run"]
    assert (body["district"], body["level"], body["created_by"]) == ("101", "state", "stella")


# Who may create a schedule of district A, with the district setting off and on.
@pytest.mark.parametrize(
    "allowed, body, expected",
    [
        (False, NIGHTLY, {"stella": 201, "alice": 403, "bob": 403, "charlie": 400}),
        (True, NIGHTLY, {"stella": 201, "alice": 201, "bob": 403, "charlie": 400}),
        # Bob schedules what he may send by hand: Enrollment, not District.
        (
            True,
            {**NIGHTLY, "objects": ["Enrollment"]},
            {"stella": 201, "alice": 201, "bob": 201, "charlie": 400},
        ),
        (
            True,
            {**NIGHTLY, "objects": [], "all": True},
            {"stella": 201, "alice": 201, "bob": 403, "charlie": 400},
        ),
        (
            True,
            {**NIGHTLY, "district": None, "state": "KY"},
            {"stella": 201, "alice": 403, "bob": 403, "charlie": 403},
        ),
    ],
    ids=["districts not allowed", "districts allowed", "bob's own object", "full resync", "a whole state"],
)
def test_it_lets_only_the_right_people_schedule(client, cast, settings, allowed, body, expected):
    settings.SCHEDULES_FOR_DISTRICTS = allowed
    body = {k: v for k, v in body.items() if v is not None}
    got = {}
    for name in expected:
        got[name] = api(client, getattr(cast, name), "post", "/api/v1/schedules/", body).status_code
    assert got == expected
    assert Schedule.objects.count() == list(got.values()).count(201)


def test_it_hides_a_schedule_from_those_who_may_not_see_it(client, cast, settings):
    settings.SCHEDULES_FOR_DISTRICTS = True
    stellas = make(cast.stella)  # a state schedule: the district never sees it
    alices = make(cast.alice)
    seen = {
        name: sorted(
            s["id"] for s in api(client, getattr(cast, name), "get", "/api/v1/schedules/").json()["results"]
        )
        for name in ("stella", "alice", "charlie")
    }
    assert seen == {"stella": sorted([stellas.pk, alices.pk]), "alice": [alices.pk], "charlie": []}
    assert api(client, cast.charlie, "post", f"/api/v1/schedules/{alices.pk}/pause/").status_code == 404
    assert api(client, cast.alice, "post", f"/api/v1/schedules/{stellas.pk}/pause/").status_code == 404
    assert api(client, cast.alice, "delete", f"/api/v1/schedules/{stellas.pk}/").status_code == 404
    settings.SCHEDULES_FOR_DISTRICTS = False  # the state takes the right back
    assert api(client, cast.alice, "post", f"/api/v1/schedules/{alices.pk}/pause/").status_code == 403
    assert not Schedule.objects.filter(paused=True).exists()


def test_it_pauses_resumes_and_changes_one_by_api(client, cast):
    schedule = make(cast.stella, due=None)
    url = f"/api/v1/schedules/{schedule.pk}/"
    assert api(client, cast.stella, "post", url + "pause/").json()["paused"] is True
    assert api(client, cast.stella, "post", url + "resume/").json()["paused"] is False
    changed = api(client, cast.stella, "patch", url, {"cron": "30 3 * * 0"})
    assert changed.status_code == 200, changed.content
    assert changed.json()["cron"] == "30 3 * * 0"
    assert api(client, cast.stella, "patch", url, {"cron": "every night"}).status_code == 400
    assert api(client, cast.stella, "delete", url).status_code == 204
    assert not Schedule.objects.exists()


def test_it_lists_schedules_in_the_admin_cheaply_with_their_next_runs(
    client, cast, django_assert_max_num_queries
):
    for i in range(5):
        make(cast.stella, due=None, name=f"Nightly {i}")
    client.force_login(cast.stella)
    with django_assert_max_num_queries(12):
        response = client.get("/admin/schedules/schedule/")
    assert response.status_code == 200
    assert response.content.decode().count(" 02:00 C") == 5  # CST or CDT: the schedule's zone


def test_it_pauses_from_the_admin_and_shows_what_each_sent(client, cast):
    schedule = make(cast.stella)
    (fired,) = actions.tick()
    client.force_login(cast.stella)
    page = client.get(f"/admin/schedules/schedule/{schedule.pk}/change/").content.decode()
    assert f"/admin/resync/resyncrequest/{fired.requests[0].pk}/change/" in page
    response = client.post(
        "/admin/schedules/schedule/", {"action": "pause", "_selected_action": [schedule.pk]}, follow=True
    )
    assert "Paused 1 schedule(s)." in response.content.decode()
    assert Schedule.objects.get(pk=schedule.pk).paused


def test_it_adds_one_in_the_admin_through_the_same_checks(client, cast):
    client.force_login(cast.stella)
    form = {"name": "Bad", "district": cast.district.pk, "cron": "0 25 * * *", "time_zone": "UTC",
            "missed": "run_once", "objects_asked": '["District"]'}  # fmt: skip
    response = client.post("/admin/schedules/schedule/add/", form)
    assert response.status_code == 200
    assert "is not a cron expression" in response.content.decode()
    response = client.post("/admin/schedules/schedule/add/", {**form, "cron": "0 2 * * *"})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Schedule.objects.get().created_by == cast.stella


def test_it_fires_due_schedules_from_the_command(cast, capsys):
    schedule = make(cast.stella)
    call_command("run_schedules")
    assert "Nightly: Sent 1 request(s)." in capsys.readouterr().out
    assert schedule.requests.count() == 1


def test_it_loops_on_rqs_own_cron_scheduler_ticking_every_minute(monkeypatch):
    started = []
    monkeypatch.setattr(CronScheduler, "start", lambda self: started.append(self.get_jobs()))
    call_command("run_schedules", "--loop")
    ((job,),) = started
    assert (job.func_name, job.cron) == ("schedules.jobs.tick", "* * * * *")


@COMMITTED  # a worker runs the ticks and the request's steps, on the real Redis
def test_it_sends_once_when_two_rq_cron_schedulers_enqueue_the_same_minute(cast, queue):
    add(cast.district, "District", 1)
    schedule = make(cast.stella)
    two = [jobs.scheduler(queue.connection) for _ in range(2)]
    for cron in two:
        (job,) = cron.get_jobs()
        job.enqueue(cron.connection)  # what each does at the minute: the tick, on the queue
    assert queue.count == 2
    run_queue()
    request = ResyncRequest.objects.get()
    assert request.schedule == schedule
    step = DISBatchHistory.objects.get(request=request)
    assert (step.sync_object.name, step.status) == ("District", "green")
    assert ResyncRequest.objects.get().status == ResyncRequest.Status.FINISHED


def test_it_keeps_a_districts_schedule_the_districts_when_the_state_changes_it(client, cast, settings):
    settings.SCHEDULES_FOR_DISTRICTS = True
    alices = make(cast.alice, due=None)
    changed = api(client, cast.stella, "patch", f"/api/v1/schedules/{alices.pk}/", {"cron": "0 3 * * *"})
    assert (changed.status_code, changed.json()["level"], changed.json()["created_by"]) == (
        200,
        "district",
        "alice",
    )
    assert [s["id"] for s in api(client, cast.alice, "get", "/api/v1/schedules/").json()["results"]] == [
        alices.pk
    ]


def test_it_lets_a_district_admin_add_their_own_in_the_admin_only_when_allowed(client, cast, settings):
    form = {"name": "Ours", "district": cast.district.pk, "cron": "0 2 * * *", "time_zone": "UTC",
            "missed": "skip", "objects_asked": '["District"]'}  # fmt: skip
    client.force_login(cast.alice)
    assert client.post("/admin/schedules/schedule/add/", form).status_code == 403
    settings.SCHEDULES_FOR_DISTRICTS = True
    # Another district is no choice of hers: refused as if it did not exist.
    response = client.post("/admin/schedules/schedule/add/", {**form, "district": cast.other.pk})
    assert "Select a valid choice" in response.content.decode()
    assert client.post("/admin/schedules/schedule/add/", form).status_code == 302
    assert Schedule.objects.get().level == ResyncRequest.Level.DISTRICT


def test_it_lists_by_api_cheaply_and_shows_what_one_sent(client, cast, django_assert_max_num_queries):
    schedule = make(cast.stella)
    (fired,) = actions.tick()
    for i in range(5):
        make(cast.stella, due=None, name=f"Weekly {i}")
    api(client, cast.stella, "get", "/api/v1/schedules/")  # the token, made once
    with django_assert_max_num_queries(8):
        listed = api(client, cast.stella, "get", "/api/v1/schedules/")
    assert listed.json()["count"] == 6
    one = api(client, cast.stella, "get", f"/api/v1/schedules/{schedule.pk}/").json()
    assert one["requests"] == [fired.requests[0].pk]


def test_it_marks_a_scheduled_request_in_the_history_and_the_api(client, cast, queue):
    add(cast.district, "District", 1)
    schedule = make(cast.stella)
    (fired,) = actions.tick()
    (request,) = fired.requests
    by_hand = tool_actions.do_request_resync(
        tool_actions.check_resync(cast.district, None, ["School"], False)
    )
    body = api(client, cast.stella, "get", f"/api/v1/requests/{request.pk}/").json()
    assert body["schedule"] == schedule.pk
    client.force_login(cast.stella)
    page = client.get(f"/admin/resync/resyncrequest/{request.pk}/change/").content.decode()
    assert "Schedule:" in page and str(schedule) in page
    listed = client.get("/admin/resync/resyncrequest/", {"schedule__isempty": "0"}).content.decode()
    assert f"/admin/resync/resyncrequest/{request.pk}/change/" in listed
    assert f"/admin/resync/resyncrequest/{by_hand.pk}/change/" not in listed
