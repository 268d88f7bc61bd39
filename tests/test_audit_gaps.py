"""The audit trail's gaps (issue 15): schedules, webhooks and email subscriptions changed
through the API record what the admin records, under the same action names; admin
actions (pause, resume) and Selective Sync and verification deletions are recorded;
a user's status flags are rights; and a schedule's own tick changes nothing people set."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from audit import rights as audit_rights
from audit.models import AuditEntry
from audit.signals import change_message
from notify.models import Webhook
from resync import groups
from resync.models import ResyncRequest
from schedules import actions as schedules
from schedules.models import Schedule
from selective.actions import check_selective_sync, do_selective_sync
from verification.models import VerificationRun

from .conftest import BOTH, chain

pytestmark = pytest.mark.django_db(databases=BOTH)

NIGHTLY = {"name": "Nightly", "district": "101", "objects": ["District"], "cron": "0 2 * * *",
           "time_zone": "America/Chicago"}  # fmt: skip
HOOK = {"district": "101", "url": "http://127.0.0.1:9/hook", "names": ["Resync Finished"]}


@pytest.fixture
def cast(cast):
    """The cast with audit R as audit 0002 grants it (the cast's groups are reset to their base)."""
    groups.grant(Group, Permission, audit_rights.GROUPS)
    return cast


def api(client, user, method: str, url: str, body=None):
    token = Token.objects.get_or_create(user=user)[0].key
    kwargs = {"content_type": "application/json"} if body is not None else {}
    return getattr(client, method)(url, body, headers={"authorization": f"Token {token}"}, **kwargs)


def trail(model: str) -> list[tuple[str, str, str, str]]:
    """(action, door, user, object id) of every entry about rows of `model`, oldest first."""
    rows = AuditEntry.objects.filter(object_type=model).order_by("id")
    return [(e.action, e.door, e.username, e.object_id) for e in rows]


def test_it_says_what_changed_old_to_new_and_nothing_when_nothing_did():
    labels = {"cron": "Cron", "paused": "Paused"}
    old = {"cron": "0 2 * * *", "paused": False}
    assert change_message(old, {"cron": "0 3 * * *", "paused": True}, labels) == (
        "Changed Cron: '0 2 * * *' → '0 3 * * *'; Paused: False → True."
    )
    assert change_message(old, dict(old), labels) == ""


def test_it_records_a_schedule_made_changed_paused_and_deleted_by_the_api(client, cast):
    made = api(client, cast.stella, "post", "/api/v1/schedules/", NIGHTLY)
    assert made.status_code == 201, made.content
    pk = str(made.json()["id"])
    url = f"/api/v1/schedules/{pk}/"
    assert api(client, cast.stella, "patch", url, {"cron": "0 3 * * *"}).status_code == 200
    assert api(client, cast.stella, "post", url + "pause/").status_code == 200
    assert api(client, cast.stella, "post", url + "resume/").status_code == 200
    assert api(client, cast.stella, "delete", url).status_code == 204
    assert trail("schedules.schedule") == [
        ("setting.added", "api", "stella", pk),
        ("setting.changed", "api", "stella", pk),
        ("setting.changed", "api", "stella", pk),
        ("setting.changed", "api", "stella", pk),
        ("setting.deleted", "api", "stella", pk),
    ]
    details = list(AuditEntry.objects.filter(object_type="schedules.schedule").order_by("id"))
    assert details[1].detail == "Changed Cron: '0 2 * * *' → '0 3 * * *'."
    assert details[2].detail == "Changed Paused: False → True."
    # A state administrator's schedule of a district is the state's, as its requests are.
    assert {(e.district, e.level) for e in details} == {(cast.district, ResyncRequest.Level.STATE)}


def test_it_records_the_same_actions_for_a_schedule_in_the_admin_once_each(client, cast):
    client.force_login(cast.stella)
    form = {"name": "Nightly", "district": cast.district.pk, "cron": "0 2 * * *", "time_zone": "UTC",
            "missed": "run_once", "objects_asked": '["District"]'}  # fmt: skip
    assert client.post("/admin/schedules/schedule/add/", form).status_code == 302
    pk = Schedule.objects.get().pk
    change = f"/admin/schedules/schedule/{pk}/change/"
    assert client.post(change, {**form, "time_zone": "America/Chicago"}).status_code == 302
    pause = {"action": "pause", "_selected_action": [pk]}
    assert client.post("/admin/schedules/schedule/", pause).status_code == 302
    delete = f"/admin/schedules/schedule/{pk}/delete/"
    assert client.post(delete, {"post": "yes"}).status_code == 302
    # One entry per change (not the admin's LogEntry mirror as well), the API's names.
    assert trail("schedules.schedule") == [
        ("setting.added", "admin", "stella", str(pk)),
        ("setting.changed", "admin", "stella", str(pk)),
        ("setting.changed", "admin", "stella", str(pk)),
        ("setting.deleted", "admin", "stella", str(pk)),
    ]
    changed = AuditEntry.objects.filter(action="setting.changed").order_by("id").first()
    assert changed.detail == "Changed Time zone: 'UTC' → 'America/Chicago'."


def test_it_records_nothing_but_the_request_when_a_schedule_fires(cast, queue):
    from .test_schedules import make

    make(cast.stella)
    before = AuditEntry.objects.count()
    (fired,) = schedules.tick()
    assert fired.requests
    # The tick's claim moves next_run_at and writes last_message: the system's, not a change.
    assert list(AuditEntry.objects.order_by("id")[before:].values_list("action", flat=True)) == [
        "request.sent"
    ]


def test_it_hides_a_state_schedules_entries_from_the_district(client, cast, settings):
    settings.SCHEDULES_FOR_DISTRICTS = True
    assert api(client, cast.stella, "post", "/api/v1/schedules/", NIGHTLY).status_code == 201
    ours = api(client, cast.alice, "post", "/api/v1/schedules/", {**NIGHTLY, "name": "Ours"})
    assert ours.status_code == 201, ours.content
    seen = api(client, cast.alice, "get", "/api/v1/audit/?action=setting.added").json()["results"]
    assert [e["user"] for e in seen] == ["alice"]


def test_it_records_webhooks_by_the_api_and_never_their_secret(client, cast):
    made = api(client, cast.alice, "post", "/api/v1/webhooks/", HOOK)
    assert made.status_code == 201, made.content
    pk, secret = str(made.json()["id"]), made.json()["secret"]
    url = f"/api/v1/webhooks/{pk}/"
    assert api(client, cast.alice, "patch", url, {"active": False}).status_code == 200
    assert api(client, cast.alice, "delete", url).status_code == 204
    assert trail("notify.webhook") == [
        ("setting.added", "api", "alice", pk),
        ("setting.changed", "api", "alice", pk),
        ("setting.deleted", "api", "alice", pk),
    ]
    entries = AuditEntry.objects.filter(object_type="notify.webhook")
    assert {e.district for e in entries} == {cast.district}
    assert entries.get(action="setting.changed").detail == "Changed Active: True → False."
    assert not [e for e in entries if secret in e.detail or secret in e.object_repr]


def test_it_records_a_webhook_made_in_the_admin_once(client, cast):
    client.force_login(cast.alice)
    form = {"district": cast.district.pk, "url": HOOK["url"], "names": HOOK["names"], "active": "on"}
    assert client.post("/admin/notify/webhook/add/", form).status_code == 302
    hook = Webhook.objects.get()
    assert trail("notify.webhook") == [("setting.added", "admin", "alice", str(hook.pk))]
    assert hook.secret not in AuditEntry.objects.get(object_type="notify.webhook").detail


def test_it_records_email_subscriptions_by_the_api_and_the_admin(client, cast):
    url = "/api/v1/notifications/"
    body = {"names": ["Resync Finished", "Verification Finished"]}
    assert api(client, cast.alice, "put", url, body).status_code == 200
    assert api(client, cast.alice, "put", url, {"names": ["Verification Finished"]}).status_code == 200
    entries = AuditEntry.objects.filter(object_type="notify.emailsubscription").order_by("id")
    assert [(e.action, e.door, e.username, e.object_repr) for e in entries] == [
        ("setting.added", "api", "alice", "Resync Finished by email to alice"),
        ("setting.added", "api", "alice", "Verification Finished by email to alice"),
        ("setting.deleted", "api", "alice", "Resync Finished by email to alice"),
    ]
    client.force_login(cast.bob)
    add = client.post("/admin/notify/emailsubscription/add/", {"name": "Resync Finished"})
    assert add.status_code == 302
    latest = AuditEntry.objects.filter(object_type="notify.emailsubscription").latest("id")
    assert (latest.action, latest.door, latest.username) == ("setting.added", "admin", "bob")


def finished_selective(cast, user) -> ResyncRequest:
    """A Selective Sync of PersonIdentity 1, marked finished (its run is not what is tested)."""
    chain(cast.district)
    request = do_selective_sync(check_selective_sync(cast.district, None, "PersonIdentity", [1], user))
    ResyncRequest.objects.filter(pk=request.pk).update(status=ResyncRequest.Status.FINISHED)
    return request


def test_it_records_a_selective_sync_deleted_by_the_api(client, tool_cast, queue):
    request = finished_selective(tool_cast, tool_cast.alice)
    response = api(client, tool_cast.alice, "delete", f"/api/v1/selective-syncs/{request.pk}/")
    assert response.status_code == 204
    entry = AuditEntry.objects.get(action="selectivesync.deleted")
    assert (entry.door, entry.username, entry.district, entry.object_id) == (
        "api",
        "alice",
        tool_cast.district,
        str(request.pk),
    )
    assert entry.detail == f"Deleted Selective Sync {request.pk} (PersonIdentity records 1) for 2026-2027."


def test_it_records_a_selective_sync_deleted_in_the_admin_at_its_level(client, tool_cast, queue):
    request = finished_selective(tool_cast, tool_cast.stella)
    client.force_login(tool_cast.stella)
    url = f"/admin/verification/selectivesync/{request.pk}/delete/"
    assert client.post(url, {"post": "yes"}).status_code == 302
    entry = AuditEntry.objects.get(action="selectivesync.deleted")
    assert (entry.door, entry.username, entry.level) == ("admin", "stella", ResyncRequest.Level.STATE)
    # A state Selective Sync's deletion is the state's: the district does not read it.
    seen = api(client, tool_cast.alice, "get", "/api/v1/audit/?action=selectivesync.deleted")
    assert seen.json()["results"] == []


def test_it_records_a_verification_run_deleted_in_the_admin(client, cast, superuser):
    run = VerificationRun.objects.create(
        district=cast.district, school_year=2027, sync_objects=["District"], status="finished"
    )
    client.force_login(superuser)
    url = f"/admin/verification/verificationrun/{run.pk}/delete/"
    assert client.post(url, {"post": "yes"}).status_code == 302
    entry = AuditEntry.objects.get(action="verificationrun.deleted")
    assert (entry.door, entry.username, entry.district, entry.object_id) == (
        "admin",
        "root",
        cast.district,
        str(run.pk),
    )
    assert entry.detail == f"Deleted verification run {run.pk} (District) for 2026-2027."


def test_it_records_a_users_superuser_and_active_flags_from_the_admins_user_page(client, cast, superuser):
    client.force_login(superuser)
    url = f"/admin/auth/user/{cast.bob.pk}/change/"
    page = client.get(url)
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data.pop("password", None)
    data["user_permissions"] = [p.pk for p in data.get("user_permissions", [])]
    data["groups"] = [g.pk for g in data.get("groups", [])]
    for stamp in ("last_login", "date_joined"):
        if stamp in data:
            data[f"{stamp}_0"], data[f"{stamp}_1"] = data[stamp].strftime("%Y-%m-%d %H:%M:%S").split()
            del data[stamp]
    data["is_superuser"] = "on"
    data["is_staff"] = "on"
    data.pop("is_active", None)  # unticked
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    bob = User.objects.get(pk=cast.bob.pk)
    assert bob.is_superuser and not bob.is_active
    entries = AuditEntry.objects.filter(object_type="auth.user", object_id=str(bob.pk), door="admin")
    assert sorted((e.action, e.detail, e.username) for e in entries) == [
        ("right.granted", "superuser status", "root"),
        ("right.revoked", "active", "root"),
    ]


def test_it_records_a_district_added_by_the_command(cast):
    args = ["--state", "KY", "--code", "303", "--name", "Clay County", "--year", "2027"]
    call_command("add_district", *args, stdout=io.StringIO())
    entry = AuditEntry.objects.get(action="setting.added", object_type="resync.district")
    assert (entry.door, entry.username, entry.district.code) == ("command", "", "303")
    assert entry.detail == "Added district 303 Clay County of KY."


def test_it_records_a_verification_asked_for_by_the_api_at_its_level(client, tool_cast, queue):
    body = {"district": "101", "objects": ["District"]}
    for user in (tool_cast.alice, tool_cast.stella):
        assert api(client, user, "post", "/api/v1/verifications/", body).status_code == 201
    entries = AuditEntry.objects.filter(action="verification.requested").order_by("id")
    assert [(e.username, e.door, e.district, e.level, e.detail) for e in entries] == [
        ("alice", "api", tool_cast.district, ResyncRequest.Level.DISTRICT, "District for 2026-2027"),
        ("stella", "api", tool_cast.district, ResyncRequest.Level.STATE, "District for 2026-2027"),
    ]
    # The state's run is the state's: alice reads her own entry only.
    seen = api(client, tool_cast.alice, "get", "/api/v1/audit/?action=verification.requested").json()
    assert [e["user"] for e in seen["results"]] == ["alice"]


def test_it_records_a_user_added_and_deleted_on_the_admins_user_pages(client, cast, superuser):
    client.force_login(superuser)
    form = {"username": "dora", "password1": "a long pass phrase 1", "password2": "a long pass phrase 1",
            "usable_password": "true"}  # fmt: skip
    response = client.post("/admin/auth/user/add/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    dora = User.objects.get(username="dora")
    assert client.post(f"/admin/auth/user/{dora.pk}/delete/", {"post": "yes"}).status_code == 302
    entries = AuditEntry.objects.filter(object_type="auth.user", object_id=str(dora.pk)).order_by("id")
    assert [(e.action, e.door, e.username, e.object_repr) for e in entries] == [
        ("user.added", "admin", "root", "dora"),
        ("user.deleted", "admin", "root", "dora"),
    ]


def test_it_records_a_superuser_deleting_themselves(client, superuser):
    # The entry names its author, who is being deleted: written before the row goes, it is
    # one of the references the deletion clears (after it, it would break the foreign key).
    client.force_login(superuser)
    assert client.post(f"/admin/auth/user/{superuser.pk}/delete/", {"post": "yes"}).status_code == 302
    entry = AuditEntry.objects.get(action="user.deleted")
    assert (entry.user, entry.username, entry.object_repr) == (None, "root", "root")


def test_it_records_an_api_token_made_and_deleted_in_the_admin_never_its_key(client, cast, superuser):
    client.force_login(superuser)
    assert client.post("/admin/authtoken/tokenproxy/add/", {"user": cast.bob.pk}).status_code == 302
    key = Token.objects.get(user=cast.bob).key
    delete = f"/admin/authtoken/tokenproxy/{cast.bob.pk}/delete/"  # DRF's proxy: the user's pk
    assert client.post(delete, {"post": "yes"}).status_code == 302
    assert not Token.objects.filter(user=cast.bob).exists()
    entries = AuditEntry.objects.filter(action__startswith="token.").order_by("id")
    assert [(e.action, e.door, e.username, e.object_id) for e in entries] == [
        ("token.added", "admin", "root", str(cast.bob.pk)),
        ("token.deleted", "admin", "root", str(cast.bob.pk)),
    ]
    assert not [e for e in entries if key in e.detail or key in e.object_repr or key in e.object_id]
