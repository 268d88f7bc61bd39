"""The audit trail (issue 15): each change names who, the door and the object; the report
and the API show a district administrator their districts' entries only, never the
state's; nobody edits or deletes an entry."""

import csv
import io

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from audit import doors
from audit import rights as audit_rights
from audit.models import AuditEntry
from audit.trail import record
from history.models import DISBatchHistory, ErrorLog, StepStatus
from resync import groups, rights
from resync.models import ResyncRequest
from tool import actions

from .conftest import BOTH, add

pytestmark = pytest.mark.django_db(databases=BOTH)


@pytest.fixture
def cast(cast):
    """The cast with audit R as audit 0002 grants it (the cast's groups are reset to their base)."""
    groups.grant(Group, Permission, audit_rights.GROUPS)
    return cast


def api(client, user, method: str, url: str, body=None):
    token = Token.objects.get_or_create(user=user)[0].key
    kwargs = {"content_type": "application/json"} if body is not None else {}
    return getattr(client, method)(url, body, headers={"authorization": f"Token {token}"}, **kwargs)


def sent(district, user, level=ResyncRequest.Level.DISTRICT) -> ResyncRequest:
    checked = actions.check_resync(district, None, ["District"], False, user=user, level=level)
    return actions.do_request_resync(checked)


def test_it_records_a_right_granted_by_grant_district(cast):
    call_command("grant_district", "bob", "202", "--objects", "School", stdout=io.StringIO())
    entry = AuditEntry.objects.get(action="right.granted", district=cast.other, door="command")
    assert entry.username == ""  # an operator's command: no user of ours
    assert (entry.object_type, entry.object_id) == ("auth.user", str(cast.bob.pk))
    assert entry.detail == f"resync.resync_district on {cast.other}"
    objects = AuditEntry.objects.filter(action="right.granted", door="command", district=None)
    assert [(e.object_id, e.detail) for e in objects] == [
        (str(cast.bob.pk), "resync.resync_object on School")
    ]


def test_it_records_rights_changed_on_the_admins_group_page(client, cast, superuser):
    group = Group.objects.get(name=groups.DISTRICT_ADMINS)
    kept = list(group.permissions.values_list("pk", flat=True))
    load = Permission.objects.get(codename="load_district_data")
    client.force_login(superuser)
    page = f"/admin/auth/group/{group.pk}/change/"
    assert client.post(page, {"name": group.name, "permissions": [*kept, load.pk]}).status_code == 302
    entry = AuditEntry.objects.get(action="right.granted", object_type="auth.group", door="admin")
    assert (entry.username, entry.door, entry.object_id) == ("root", "admin", str(group.pk))
    assert entry.detail == "loads.load_district_data"
    assert client.post(page, {"name": group.name, "permissions": kept}).status_code == 302
    revoked = AuditEntry.objects.get(action="right.revoked", object_type="auth.group", door="admin")
    assert (revoked.username, revoked.detail) == ("root", "loads.load_district_data")


def test_it_records_a_group_joined_on_the_admins_user_page(client, cast, superuser):
    client.force_login(superuser)
    page = client.get(f"/admin/auth/user/{cast.bob.pk}/change/")
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k not in ("password",)}
    data |= {"date_joined_0": cast.bob.date_joined.date(), "date_joined_1": "00:00:00"}
    data |= {"user_permissions": [], "groups": [Group.objects.get(name=groups.DISTRICT_ADMINS).pk]}
    data.pop("last_login", None)
    data.pop("date_joined", None)
    response = client.post(f"/admin/auth/user/{cast.bob.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = AuditEntry.objects.get(action="group.joined", object_id=str(cast.bob.pk))
    assert (entry.username, entry.door, entry.detail) == ("root", "admin", groups.DISTRICT_ADMINS)


def test_it_records_a_request_sent_by_the_api(client, cast, queue):
    response = api(
        client, cast.alice, "post", "/api/v1/requests/", {"district": "101", "objects": ["District"]}
    )
    assert response.status_code == 201
    entry = AuditEntry.objects.get(action="request.sent")
    assert (entry.username, entry.door, entry.district, entry.level) == (
        "alice",
        "api",
        cast.district,
        "district",
    )
    assert (entry.object_type, entry.object_id) == ("resync.resyncrequest", str(response.json()["id"]))


def test_it_records_a_refused_request_nowhere(client, cast):
    response = api(client, cast.bob, "post", "/api/v1/requests/", {"district": "101", "objects": ["School"]})
    assert response.status_code == 403
    assert not AuditEntry.objects.filter(action="request.sent").exists()


def test_it_records_a_cancel_from_the_admin_as_the_admins(client, cast, queue):
    add(cast.district, "District", 1)  # something to move: an empty object's step ends at once
    request = sent(cast.district, cast.alice)  # starts: a second one waits
    waiting = sent(cast.district, cast.stella)
    assert waiting.status == ResyncRequest.Status.WAITING and request.pk != waiting.pk
    client.force_login(cast.alice)
    assert client.post(f"/admin/resync/resyncrequest/{waiting.pk}/cancel/").status_code == 303
    entry = AuditEntry.objects.get(action="request.cancelled")
    assert (entry.username, entry.door, entry.object_id) == ("alice", "admin", str(waiting.pk))


def test_it_records_a_scheduled_send_as_the_schedules(cast, queue):
    # A scheduler (or any new door) says where it starts; do_request_resync records it.
    with doors.entered(doors.SCHEDULE):
        request = sent(cast.district, cast.stella)
    entry = AuditEntry.objects.get(action="request.sent")
    assert (entry.door, entry.username, entry.object_id) == ("schedule", "stella", str(request.pk))
    assert doors.current() == doors.SYSTEM  # and the door closes behind it


def test_it_records_deleting_history(client, cast, queue):
    request = sent(cast.district, cast.alice)
    ResyncRequest.objects.filter(pk=request.pk).update(status="finished")
    DISBatchHistory.objects.filter(request=request).update(status=StepStatus.GREEN)
    step = DISBatchHistory.objects.get(request=request)
    client.force_login(cast.alice)
    client.post(
        "/admin/history/disbatchhistory/",
        {"action": "delete_selected", "_selected_action": [step.pk], "post": "yes"},
    )
    assert not DISBatchHistory.objects.filter(pk=step.pk).exists()
    entry = AuditEntry.objects.get(action="disbatchhistory.deleted")
    assert (entry.username, entry.door, entry.district) == ("alice", "admin", cast.district)
    assert entry.detail == "1 row deleted from DIS batch history"


def test_it_records_clearing_the_error_log_hiding_a_state_requests(client, cast, queue):
    mine, states = (
        sent(cast.district, cast.alice),
        sent(cast.district, cast.stella, ResyncRequest.Level.STATE),
    )
    rows = []
    for request in (mine, states, states):
        step = DISBatchHistory.objects.filter(request=request).first()
        rows.append(
            ErrorLog.objects.create(
                step=step,
                district=cast.district,
                sync_object=step.sync_object,
                record_id=1,
                reason="parent_missing",
                message="m",
            )
        )
    client.force_login(cast.stella)
    client.post(
        "/admin/history/errorlog/",
        {"action": "delete_selected", "_selected_action": [r.pk for r in rows], "post": "yes"},
    )
    assert not ErrorLog.objects.exists()
    entries = AuditEntry.objects.filter(action="errorlog.deleted").order_by("level")
    assert [(e.username, e.door, e.level, e.detail) for e in entries] == [
        ("stella", "admin", "district", "1 row deleted from error logs"),
        ("stella", "admin", "state", "2 rows deleted from error logs"),
    ]
    assert [e.pk for e in audit_rights.readable(cast.alice).filter(action="errorlog.deleted")] == [
        entries[0].pk
    ]


def test_it_records_a_data_load_by_the_api(client, cast):
    cast.alice.user_permissions.add(Permission.objects.get(codename="load_district_data"))
    body = [{"record_id": 2, "name": "Adair County", "code": "101"}]
    assert api(client, cast.alice, "post", "/api/v1/district-records/101/District/", body).status_code == 200
    entry = AuditEntry.objects.get(action="data.loaded")
    assert (entry.username, entry.door, entry.district, entry.object_type) == (
        "alice",
        "api",
        cast.district,
        "loads.load",
    )
    assert "1 inserted" in entry.detail


def test_it_mirrors_a_setting_the_admin_changed_from_djangos_log(client, cast, superuser):
    client.force_login(superuser)
    page = client.get(f"/admin/resync/district/{cast.district.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data["time_zone"] = "America/New_York"
    data.update(_inline_management(page))
    response = client.post(f"/admin/resync/district/{cast.district.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = AuditEntry.objects.get(action="setting.changed")
    assert (entry.username, entry.door, entry.district, entry.object_type) == (
        "root",
        "admin",
        cast.district,
        "resync.district",
    )
    assert entry.detail == "Changed Time zone."


def _inline_management(page) -> dict:
    """The management form fields of the page's inlines, as the browser sends them."""
    out = {}
    for formset in page.context.get("inline_admin_formsets", []):
        prefix = formset.formset.prefix
        out[f"{prefix}-TOTAL_FORMS"] = formset.formset.total_form_count()
        out[f"{prefix}-INITIAL_FORMS"] = formset.formset.initial_form_count()
        for i, f in enumerate(formset.formset.forms):
            for name, value in f.initial.items():
                out[f"{prefix}-{i}-{name}"] = value
    return out


@pytest.fixture
def trail(cast, queue) -> dict[str, AuditEntry]:
    """A's district request, the state's request to A and B's request, each recorded."""
    sent(cast.district, cast.alice)
    sent(cast.district, cast.stella, level=ResyncRequest.Level.STATE)
    sent(cast.other, cast.charlie)
    return {e.username: e for e in AuditEntry.objects.filter(action="request.sent")}


def test_it_shows_a_district_administrator_their_districts_entries_only(client, cast, trail):
    seen = {
        u: {e["user"] for e in api(client, u, "get", "/api/v1/audit/?action=request.sent").json()["results"]}
        for u in (cast.stella, cast.alice, cast.charlie)
    }
    assert seen == {
        cast.stella: {"alice", "stella", "charlie"},
        cast.alice: {"alice"},
        cast.charlie: {"charlie"},
    }
    # Nor by the admin's report, its filters or an entry's own page.
    client.force_login(cast.alice)
    page = client.get("/admin/audit/auditentry/?action=request.sent").content.decode()
    assert "alice" in page and "charlie" not in page and "stella" not in page
    assert client.get(f"/admin/audit/auditentry/{trail['stella'].pk}/change/").status_code == 404
    assert client.get(f"/admin/audit/auditentry/{trail['charlie'].pk}/change/").status_code == 404
    assert client.get(f"/admin/audit/auditentry/{trail['alice'].pk}/change/").status_code == 200


def test_it_lets_no_district_user_outside_the_administrators_read_it(client, cast, trail):
    assert api(client, cast.bob, "get", "/api/v1/audit/").status_code == 403
    client.force_login(cast.bob)
    assert client.get("/admin/audit/auditentry/").status_code == 403
    assert client.get("/admin/audit/auditentry/export.csv").status_code == 403


def test_it_offers_no_door_to_edit_or_delete_an_entry(client, cast, trail, superuser):
    entry = trail["alice"]
    for method in ("post", "put", "patch", "delete"):
        assert api(client, cast.stella, method, "/api/v1/audit/", {}).status_code == 405
        assert api(client, cast.stella, method, f"/api/v1/audit/{entry.pk}/", {}).status_code in (404, 405)
    client.force_login(superuser)
    assert client.post(f"/admin/audit/auditentry/{entry.pk}/change/", {"detail": "x"}).status_code == 403
    assert client.post(f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    listing = client.get("/admin/audit/auditentry/").content.decode()
    assert "delete_selected" not in listing
    assert client.get("/admin/audit/auditentry/add/").status_code == 403
    with pytest.raises(ValueError):
        entry.save()
    with pytest.raises(ValueError):
        entry.delete()
    entry.refresh_from_db()
    assert entry.detail == "2026-2027: District"


def test_it_writes_the_report_as_formula_safe_csv(client, cast, trail):
    record("schema.changed", cast.district, user=cast.stella, detail='=HYPERLINK("http://x")')
    client.force_login(cast.stella)
    response = client.get("/admin/audit/auditentry/export.csv?action__exact=schema.changed")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["at", "username", "door"]
    assert [r[9] for r in rows[1:]] == ['\'=HYPERLINK("http://x")']


def test_it_lists_the_report_in_a_fixed_number_of_queries(client, cast, trail):
    client.force_login(cast.stella)

    def queries() -> int:
        with CaptureQueriesContext(connection) as done:
            assert client.get("/admin/audit/auditentry/").status_code == 200
        return len(done)

    few = queries()
    for i in range(20):
        record(
            "schema.changed", cast.district if i % 2 else cast.other, user=cast.alice if i % 2 else cast.bob
        )
    assert queries() == few == 14


def test_it_hides_what_a_state_request_hides_by_the_one_rule(cast, trail):
    assert set(audit_rights.readable(cast.alice).filter(action="request.sent")) == {trail["alice"]}
    assert rights.level_shown(trail["stella"].level, rights.is_state(cast.alice)) is False


def test_it_names_the_schedule_and_the_command_doors_where_they_start(cast, queue):
    # The real entry points, not a door set by hand: a schedule's tick and resync_run.
    from schedules import actions as schedules

    from .test_schedules import make

    add(cast.district, "District", 1)
    make(cast.stella)
    (fired,) = schedules.tick()
    (request,) = fired.requests
    entry = AuditEntry.objects.get(action="request.sent", object_id=str(request.pk))
    assert (entry.door, entry.username) == ("schedule", "stella")
    ResyncRequest.objects.filter(pk=request.pk).update(status="finished")
    call_command("resync_run", "School", "--district", "101")
    latest = ResyncRequest.objects.latest("id")
    entry = AuditEntry.objects.get(action="request.sent", object_id=str(latest.pk))
    assert entry.door == "command"
    assert doors.current() == doors.SYSTEM
