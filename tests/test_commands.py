import json

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.django_db
def test_it_prints_the_plan_as_json(capsys):
    call_command("resync_plan", "TestScore", "--check-dependencies", "--json")
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
    call_command("resync_plan", "--all")
    out = capsys.readouterr().out
    assert (
        out.splitlines()[0]
        == " 1. CourseCode, District, ISEPResidentialCertification, ISEPResidentialVerification"
    )
    assert "ReportingEntity" not in out  # disabled by default


@pytest.mark.django_db
def test_it_refuses_unknown_objects_and_empty_selections():
    with pytest.raises(CommandError, match="Unknown sync object.*Bogus"):
        call_command("resync_plan", "Bogus")
    with pytest.raises(CommandError, match="or pass --all"):
        call_command("resync_plan")


@pytest.mark.django_db
def test_it_prints_a_working_demo_login(capsys, client):
    call_command("demo_login", "--port", "8123")
    out = capsys.readouterr().out
    assert "http://127.0.0.1:8123/admin/ as admin / " in out
    password = out.strip().rsplit(" / ", 1)[1]
    assert client.login(username="admin", password=password)
