import io
import json
import threading
import time

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connections

from .conftest import BOTH, COMMITTED, add, run_queue


@pytest.mark.django_db
def test_it_prints_the_plan_as_json(capsys):
    call_command("resync_plan", "TestScore", "--check-dependencies", "--json", "--catalog")
    order = json.loads(capsys.readouterr().out)
    assert order == [
        "District",
        "School",
        "Calendar",
        "ScheduleStructure",
        "PersonIdentity",
        "Test",
        "TestScore",
    ]


@pytest.mark.django_db
def test_it_prints_layers_readably(capsys):
    call_command("resync_plan", "--all", "--catalog")
    out = capsys.readouterr().out
    assert (
        out.splitlines()[0]
        == " 1. CourseCode, District, ISEPResidentialCertification, ISEPResidentialVerification"
    )
    assert "ReportingEntity" not in out  # disabled by default


@pytest.mark.django_db
def test_it_refuses_unknown_objects_and_empty_selections():
    with pytest.raises(CommandError, match="Unknown sync object.*Bogus"):
        call_command("resync_plan", "Bogus", "--catalog")
    with pytest.raises(CommandError, match="or pass --all"):
        call_command("resync_plan", "--catalog")


@pytest.mark.django_db
def test_it_plans_what_a_district_would_really_run(district, capsys):
    # Kentucky's edition, the scoped year: an edition-only object of another state is
    # not planned, as check_resync would not offer it; the catalog-wide plan has it.
    call_command("resync_plan", "--all", "--district", "101", "--json")
    district_order = json.loads(capsys.readouterr().out)
    call_command("resync_plan", "--all", "--catalog", "--json")
    catalog_order = json.loads(capsys.readouterr().out)
    assert "AttendanceKYMinute" in district_order and "AttendanceKYMinute" in catalog_order
    assert "AttendanceSDMinute" not in district_order and "AttendanceSDMinute" in catalog_order
    assert set(district_order) < set(catalog_order)


@pytest.mark.django_db
def test_it_plans_a_district_s_other_year_with_only_what_syncs_that_year(district, capsys):
    call_command("resync_plan", "--all", "--district", "101", "--year", "2028", "--json")
    next_year = json.loads(capsys.readouterr().out)
    call_command("resync_plan", "--all", "--district", "101", "--json")
    this_year = json.loads(capsys.readouterr().out)
    # Objects not tied to a school year (District, School) sync in the scoped year only.
    assert "District" in this_year and "District" not in next_year
    assert next_year and set(next_year) < set(this_year)


@pytest.mark.django_db
def test_it_refuses_a_district_plan_resync_would_refuse(district):
    with pytest.raises(CommandError, match="No district with code '999'"):
        call_command("resync_plan", "--all", "--district", "999")
    with pytest.raises(CommandError, match="School year 2030 is not configured for district 101"):
        call_command("resync_plan", "--all", "--district", "101", "--year", "2030")
    with pytest.raises(CommandError, match="Not offered for district 101 in 2027: AttendanceSDMinute"):
        call_command("resync_plan", "AttendanceSDMinute", "--district", "101")
    with pytest.raises(CommandError, match="--district --catalog"):
        call_command("resync_plan", "--all")  # which plan: a district's or the catalog's
    with pytest.raises(CommandError, match="--year plans a district's year"):
        call_command("resync_plan", "--all", "--catalog", "--year", "2027")


@pytest.mark.django_db
def test_it_prints_a_working_demo_login(capsys, client):
    call_command("demo_login", "--port", "8123")
    out = capsys.readouterr().out
    assert "http://127.0.0.1:8123/admin/ as admin / " in out
    password = out.strip().rsplit(" / ", 1)[1]
    assert client.login(username="admin", password=password)


@pytest.mark.django_db(databases=BOTH)
def test_it_says_no_worker_listens_instead_of_waiting_forever(district):
    from resync.models import ResyncRequest

    add(district, "District", 1)  # a step with records waits for a worker; an empty one ends at once
    with pytest.raises(CommandError) as refused:
        call_command("resync_run", "District", "--district", district.code, "--wait")
    message = str(refused.value)
    assert f"No worker is listening on queue {settings.RQ_QUEUE!r}" in message
    assert "--work" in message and "--wait-for-worker" in message and "rqworker" in message
    request = ResyncRequest.objects.get()
    assert f"request {request.pk} stays queued" in message
    assert request.status != ResyncRequest.Status.FINISHED


@COMMITTED
def test_it_keeps_waiting_for_a_worker_when_asked_and_finishes_when_one_runs(district):
    add(district, "District", 1)
    err, out, done = io.StringIO(), io.StringIO(), []

    def wait() -> None:
        try:
            call_command(
                "resync_run",
                "District",
                "--district",
                district.code,
                "--wait",
                "--wait-for-worker",
                stdout=out,
                stderr=err,
            )
            done.append("finished")
        except Exception as e:  # noqa: BLE001 (reported by the assertion below)
            done.append(e)
        finally:
            connections.close_all()

    waiting = threading.Thread(target=wait)
    waiting.start()
    deadline = time.monotonic() + 30
    while "No worker is listening" not in err.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Waiting for one (--wait-for-worker)" in err.getvalue()
    assert waiting.is_alive()  # it did not give up
    run_queue()  # a worker now runs the request (in the main thread: RQ installs signal handlers)
    waiting.join(30)
    assert done == ["finished"], done
    assert "Overall: Green" in out.getvalue()


@pytest.mark.django_db(databases=BOTH)
def test_it_creates_a_district_administrator_who_can_log_in_with_the_printed_password(district, client):
    from django.contrib.auth.models import User

    from resync import rights

    out = io.StringIO()
    call_command(
        "grant_district",
        "dana",
        district.code,
        "--admin",
        "--load",
        "--create",
        "--email",
        "dana@adair.k12.ky.us",
        stdout=out,
    )
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Created user dana with password: ")
    password = lines[0].rsplit(" ", 1)[1]
    assert lines[-2:] == [
        f"dana may resync district {district.code}.",
        "dana may load records into every district they may resync (district data W).",
    ]
    dana = User.objects.get(username="dana")
    assert dana.is_staff and dana.email == "dana@adair.k12.ky.us" and rights.may_resync(dana, district)
    assert dana.groups.filter(name="District Administrator").exists()
    from loads.rights import may_load

    assert may_load(User.objects.get(pk=dana.pk), district)
    login = client.post("/admin/login/?next=/admin/", {"username": "dana", "password": password})
    assert login.status_code == 302 and login.headers["location"] == "/admin/"
    assert client.get(f"/admin/resync/district/{district.code}/tool/").status_code == 200


@pytest.mark.django_db(databases=BOTH)
def test_it_refuses_to_create_a_user_that_exists_or_a_bad_name_and_writes_nothing(district, cast):
    from django.contrib.auth.models import User

    with pytest.raises(CommandError, match="'alice' exists already"):
        call_command("grant_district", "alice", district.code, "--create")
    with pytest.raises(CommandError, match="No user named 'dana': add --create"):
        call_command("grant_district", "dana", district.code)
    for bad in ("da na", "dana\x00", "d" * 151):
        with pytest.raises(CommandError, match="username|150 characters"):
            call_command("grant_district", bad, district.code, "--create")
    with pytest.raises(CommandError, match="valid email"):
        call_command("grant_district", "dana", district.code, "--create", "--email", "not-an-address")
    with pytest.raises(CommandError, match="No district with code '999'"):
        call_command("grant_district", "dana", "999", "--create")
    assert not User.objects.filter(username__startswith="d").exists()


@COMMITTED
def test_it_counts_no_killed_worker_as_listening():
    # RQ keeps a SIGKILLed worker in its registry for minutes: --wait must not trust it.
    import signal

    import django_rq
    from rq.worker import Worker

    from runner.jobs import listening_workers

    from .servers import start_worker

    worker = start_worker(burst=False)
    try:
        queue = django_rq.get_queue(settings.RQ_QUEUE)
        deadline = time.monotonic() + 60
        while not any(w.pid == worker.pid for w in Worker.all(queue=queue)):
            assert time.monotonic() < deadline and worker.poll() is None, "the worker never registered"
            time.sleep(0.1)
        assert listening_workers(settings.RQ_QUEUE) >= 1
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert any(w.pid == worker.pid for w in Worker.all(queue=queue))  # still registered
        assert listening_workers(settings.RQ_QUEUE) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        for w in Worker.all(queue=django_rq.get_queue(settings.RQ_QUEUE)):
            if w.pid == worker.pid:
                w.register_death()
