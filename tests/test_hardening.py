"""Production hardening (issue 11, item 11): HTTPS settings from the environment,
`check --deploy` clean in a production configuration, and every refused right logged."""

import logging
import os
import re
import secrets
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework.authtoken.models import Token

from statesync.env import env_proxy_header

from .conftest import BOTH
from .servers import ROOT

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(60),
    "ALLOWED_HOSTS": "statesync.example.org",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto: https",
}
HARDENING = [*PRODUCTION, "SECURE_HSTS_SECONDS", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"]


def check_deploy(**env: str) -> subprocess.CompletedProcess:
    """`manage.py check --deploy --fail-level WARNING` in a process of its own, with `env`
    over this run's environment less every hardening variable (the defaults)."""
    full = {k: v for k, v in os.environ.items() if k not in HARDENING}
    full.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_passes_check_deploy_in_a_production_configuration():
    result = check_deploy(**PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_it_warns_by_default_only_about_what_plain_http_on_loopback_needs():
    # Secure cookies and HSTS are on by default; the redirect to HTTPS (the demo serves
    # plain http) and the two HSTS switches that bind more than this site are not.
    result = check_deploy()
    assert result.returncode != 0
    assert set(re.findall(r"security\.W\d+", result.stderr)) == {
        "security.W005",  # SECURE_HSTS_INCLUDE_SUBDOMAINS
        "security.W008",  # SECURE_SSL_REDIRECT
        "security.W021",  # SECURE_HSTS_PRELOAD
    }


def test_it_turns_hsts_and_secure_cookies_off_under_debug():
    result = check_deploy(
        DEBUG="true", ALLOWED_HOSTS="statesync.example.org", SECRET_KEY=secrets.token_urlsafe(60)
    )
    found = set(re.findall(r"security\.W\d+", result.stderr))
    assert {"security.W004", "security.W012", "security.W016", "security.W018"} <= found


def test_it_names_a_bad_hardening_variable_at_start_up():
    result = check_deploy(SECURE_HSTS_SECONDS="a year")
    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS='a year' is not a whole number" in result.stderr


def test_it_reads_the_proxy_ssl_header(monkeypatch):
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", " X-Forwarded-Proto : https ")
    assert env_proxy_header("SECURE_PROXY_SSL_HEADER") == ("HTTP_X_FORWARDED_PROTO", "https")
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", "")
    assert env_proxy_header("SECURE_PROXY_SSL_HEADER") is None
    for bad in ("X-Forwarded-Proto", "X-Forwarded-Proto:", "X Forwarded: https", ": https"):
        monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", bad)
        with pytest.raises(ImproperlyConfigured, match="SECURE_PROXY_SSL_HEADER=.*X-Forwarded-Proto: https"):
            env_proxy_header("SECURE_PROXY_SSL_HEADER")


@pytest.mark.django_db(databases=BOTH)
def test_it_logs_in_over_plain_http_with_secure_cookies_and_sends_hsts_only_over_https(client, cast):
    login = client.post("/admin/login/", {"username": "alice", "password": "pw", "next": "/admin/"})
    assert login.status_code == 302 and login["location"] == "/admin/"  # no redirect to https
    assert client.cookies["sessionid"]["secure"] is True
    assert client.cookies["csrftoken"]["secure"] is True
    plain = client.get("/admin/")
    assert plain.status_code == 200 and "strict-transport-security" not in plain
    secure = client.get("/admin/", secure=True)
    assert secure["strict-transport-security"] == "max-age=31536000"


# ---- every refused right is logged: who, which door, what ---------------------------------


def auth(user) -> dict:
    return {"authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"}


def refusals(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "statesync.refusals" and r.levelno == logging.WARNING
    ]


@pytest.mark.django_db(databases=BOTH)
def test_it_logs_every_403_of_the_api(client, cast, caplog):
    caplog.set_level(logging.WARNING, logger="statesync.refusals")
    client.get("/api/v1/state-requests/", headers=auth(cast.alice))
    body = {"district": "101", "objects": ["School"], "check_dependencies": True}
    client.post("/api/v1/requests/", body, content_type="application/json", headers=auth(cast.bob))
    logged = refusals(caplog)
    assert logged[0] == (
        "refused alice at api: GET /api/v1/state-requests/: "
        "Only state users (state resync R) see state resync requests."
    )
    assert logged[1].startswith("refused bob at api: POST /api/v1/requests/: ") and "School" in logged[1]
    assert len(logged) == 2


@pytest.mark.django_db(databases=BOTH)
def test_it_logs_the_admins_403s(client, cast, caplog):
    caplog.set_level(logging.WARNING, logger="statesync.refusals")
    client.force_login(cast.bob)  # staff, without the history view right
    assert client.get("/admin/history/errorlog/").status_code == 403
    assert refusals(caplog) == ["refused bob at admin: GET /admin/history/errorlog/: permission denied"]


@pytest.mark.django_db(databases=BOTH)
def test_it_logs_the_tools_refusals(client, cast, caplog):
    caplog.set_level(logging.WARNING, logger="statesync.refusals")
    client.force_login(cast.bob)
    sent = client.post(
        "/admin/resync/district/101/tool/",
        {"objects": "School", "check_dependencies": "1"},
        headers={"accept": "application/json"},
    )
    assert sent.status_code == 403  # a missing right, as the API answers it
    client.get("/admin/resync/district/101/tool/plan/", {"objects": "School"})
    client.get("/admin/resync/district/202/tool/")
    client.get("/admin/resync/district/999/tool/")  # no such district: nothing refused
    client.get("/admin/resync/district/state-tool/")
    logged = refusals(caplog)
    assert [m.split(": ")[0] for m in logged] == [
        "refused bob at admin",
        "refused bob at admin",
        "refused bob at admin",
        "refused bob at admin",
    ]
    assert "a resync of district 101" in logged[0] and "School" in logged[0]
    assert "a resync plan of district 101" in logged[1]
    assert logged[2].endswith("the Resync State Data tool of district 202")
    assert logged[3].endswith("the Resync State Data (State) tool")


@pytest.mark.django_db(databases=BOTH)
def test_it_does_not_log_bad_input_as_a_refusal(client, cast, caplog):
    caplog.set_level(logging.WARNING, logger="statesync.refusals")
    client.force_login(cast.alice)
    answer = client.get("/admin/resync/district/101/tool/plan/", {"objects": "NoSuchThing"})
    assert answer.status_code == 400
    assert refusals(caplog) == []


@pytest.mark.django_db(databases=BOTH)
def test_it_logs_a_refusal_once_when_the_door_logged_it_before_its_403(client, cast, caplog):
    caplog.set_level(logging.WARNING, logger="statesync.refusals")
    client.force_login(cast.alice)  # no Verification Summary W: cast leaves the groups their base rights
    assert client.get("/admin/verification/verificationrun/add/").status_code == 403
    assert refusals(caplog) == ["refused alice at admin: the verification run form"]
