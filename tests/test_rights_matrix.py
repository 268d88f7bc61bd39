"""Who may do what, door by door: every API endpoint, the tool's admin pages, the
live websocket and the grant_district command, for the whole cast.

stella: state admin; alice: district A admin; bob: district A user with only the
Enrollment and PersonIdentity tool rights; charlie: district B admin; anon: nobody.
404 where knowing the thing exists would leak, 403 for a missing right on
something the user may know of, 400 for a district code the user may not name.
"""

from datetime import timedelta

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group, Permission
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone
from rest_framework.authtoken.models import Token

from alerts.models import ProcessAlert
from core import events
from history.models import DISBatchHistory
from live.consumers import LiveConsumer
from loads.models import Upload
from resync import groups, rights
from resync.models import ResyncRequest, SyncObject
from statesync.asgi import application
from tool import actions

from .conftest import BOTH, COMMITTED, add

pytestmark = pytest.mark.django_db(databases=BOTH)
# COMMITTED: the websocket tests, whose consumer reads the users through database_sync_to_async.

ACTORS = ["stella", "alice", "bob", "charlie", "anon"]


def outcomes(stella, alice, bob, charlie, anon) -> dict[str, int]:
    return dict(zip(ACTORS, (stella, alice, bob, charlie, anon), strict=True))


RESYNC_A = {"district": "101", "objects": ["District"]}
STATE_A = {"districts": ["101"], "objects": ["District"]}

# (door, method, url, JSON body, expected status per actor)
DOORS = [
    ("catalog", "get", "/api/v1/sync-objects/", None, outcomes(200, 200, 200, 200, 401)),
    ("catalog entry", "get", "/api/v1/sync-objects/Enrollment/", None, outcomes(200, 200, 200, 200, 401)),
    ("districts", "get", "/api/v1/districts/", None, outcomes(200, 200, 200, 200, 401)),
    # Notifications (issue 15): everyone their own email choices; webhooks listed to all, each
    # seeing only those they manage (tests/test_notify.py has their writes' matrix).
    ("my notifications", "get", "/api/v1/notifications/", None, outcomes(200, 200, 200, 200, 401)),
    ("webhooks", "get", "/api/v1/webhooks/", None, outcomes(200, 200, 200, 200, 401)),
    (
        "my notifications page",
        "get",
        "/admin/notify/emailsubscription/",
        None,
        outcomes(200, 200, 200, 200, 302),
    ),
    ("webhooks page", "get", "/admin/notify/webhook/", None, outcomes(200, 200, 403, 200, 302)),
    ("deliveries page", "get", "/admin/notify/delivery/", None, outcomes(200, 200, 403, 200, 302)),
    ("district A", "get", "/api/v1/districts/101/", None, outcomes(200, 200, 200, 404, 401)),
    (
        "plan for A with parents",
        "get",
        "/api/v1/districts/101/plan/?objects=Enrollment&check_dependencies=true",
        None,
        outcomes(200, 200, 403, 404, 401),
    ),
    (
        "plan for A, own right",
        "get",
        "/api/v1/districts/101/plan/?objects=Enrollment",
        None,
        outcomes(200, 200, 200, 404, 401),
    ),
    ("requests", "get", "/api/v1/requests/", None, outcomes(200, 200, 200, 200, 401)),
    ("A's request", "get", "/api/v1/requests/{req_a}/", None, outcomes(200, 200, 200, 404, 401)),
    ("state request to A", "get", "/api/v1/requests/{req_state}/", None, outcomes(200, 404, 404, 404, 401)),
    ("B's request", "get", "/api/v1/requests/{req_b}/", None, outcomes(200, 404, 404, 200, 401)),
    # Resend what failed (issue 15): the world's requests never ran, so hold no errors: a 400
    # naming that for those who may see the request, 404 for the others.
    (
        "resend A's failures, preview",
        "get",
        "/api/v1/requests/{req_a}/resend-failed/",
        None,
        outcomes(400, 400, 400, 404, 401),
    ),
    (
        "resend A's failures",
        "post",
        "/api/v1/requests/{req_a}/resend-failed/",
        None,
        outcomes(400, 400, 400, 404, 401),
    ),
    (
        "resend A's failed records",
        "post",
        "/api/v1/requests/{req_a}/resend-failed-records/",
        None,
        outcomes(400, 400, 400, 404, 401),
    ),
    (
        "resend the state request's failures",
        "post",
        "/api/v1/requests/{req_state}/resend-failed/",
        None,
        outcomes(400, 404, 404, 404, 401),
    ),
    ("send a resync of A", "post", "/api/v1/requests/", RESYNC_A, outcomes(201, 201, 403, 400, 401)),
    ("state requests", "get", "/api/v1/state-requests/", None, outcomes(200, 403, 403, 403, 401)),
    ("send a state request", "post", "/api/v1/state-requests/", STATE_A, outcomes(201, 403, 403, 403, 401)),
    ("state's records", "get", "/api/v1/state-records/", None, outcomes(200, 403, 403, 403, 401)),
    (
        "state's records export",
        "get",
        "/api/v1/state-records/export/?object=District",
        None,
        outcomes(200, 403, 403, 403, 401),
    ),
    ("history", "get", "/api/v1/history/", None, outcomes(200, 200, 403, 200, 401)),
    ("A's step", "get", "/api/v1/history/{step_a}/", None, outcomes(200, 200, 403, 404, 401)),
    ("state request's step", "get", "/api/v1/history/{step_state}/", None, outcomes(200, 404, 403, 404, 401)),
    ("Error Log", "get", "/api/v1/error-log/", None, outcomes(200, 200, 403, 200, 401)),
    ("Error Log CSV", "get", "/api/v1/error-log/export/", None, outcomes(200, 200, 403, 200, 401)),
    ("Error Log by cause", "get", "/api/v1/error-log/summary/", None, outcomes(200, 200, 403, 200, 401)),
    ("alerts", "get", "/api/v1/alerts/", None, outcomes(200, 200, 200, 200, 401)),
    ("alice's alert read", "post", "/api/v1/alerts/{alert_a}/read/", None, outcomes(404, 200, 404, 404, 401)),
    (
        "alice's alert unread",
        "post",
        "/api/v1/alerts/{alert_a}/unread/",
        None,
        outcomes(404, 200, 404, 404, 401),
    ),
    ("all alerts read", "post", "/api/v1/alerts/read/", None, outcomes(200, 200, 200, 200, 401)),
    ("API root", "get", "/api/v1/", None, outcomes(200, 200, 200, 200, 401)),
    ("no such endpoint", "get", "/api/v1/nowhere/", None, outcomes(404, 404, 404, 404, 401)),
    ("schema", "get", "/api/schema/", None, outcomes(200, 200, 200, 200, 200)),
    ("doc page", "get", "/api/docs/", None, outcomes(200, 200, 200, 200, 200)),
    ("catalog and schemas", "get", "/admin/resync/syncobject/", None, outcomes(200, 200, 403, 200, 302)),
    ("tool of A", "get", "/admin/resync/district/101/tool/", None, outcomes(200, 200, 200, 404, 302)),
    (
        "tool plan of A with parents",
        "get",
        "/admin/resync/district/101/tool/plan/?objects=Enrollment&check_dependencies=1",
        None,
        outcomes(200, 200, 403, 404, 302),  # a missing right: 403, as the API answers it
    ),
    ("tool of B", "get", "/admin/resync/district/202/tool/", None, outcomes(200, 404, 404, 200, 302)),
    ("state tool", "get", "/admin/resync/district/state-tool/", None, outcomes(200, 404, 404, 404, 302)),
    ("add a district", "get", "/admin/resync/district/add/", None, outcomes(200, 403, 403, 403, 302)),
    ("RQ dashboard", "get", "/admin/django_rq/dashboard/", None, outcomes(200, 404, 404, 404, 302)),
    ("RQ's jobs", "get", "/admin/django_rq/dashboard/queues/0/", None, outcomes(200, 404, 404, 404, 302)),
    ("RQ's workers", "get", "/admin/django_rq/dashboard/workers/0/", None, outcomes(200, 404, 404, 404, 302)),
    # The history charts and the state dashboard (dashboard/): a district's chart for those
    # who may see its tool; the state's pages for the state only, 404 for the districts.
    (
        "history chart of A",
        "get",
        "/admin/dashboard/districtoutcome/history/101/",
        None,
        outcomes(200, 200, 200, 404, 302),
    ),
    (
        "history chart of B",
        "get",
        "/admin/dashboard/districtoutcome/history/202/",
        None,
        outcomes(200, 404, 404, 200, 302),
    ),
    (
        "state's history chart",
        "get",
        "/admin/dashboard/districtoutcome/history/",
        None,
        outcomes(200, 404, 404, 404, 302),
    ),
    ("state dashboard", "get", "/admin/dashboard/districtoutcome/", None, outcomes(200, 404, 404, 404, 302)),
    (
        "Error Log by cause page",
        "get",
        "/admin/history/errorlog/summary/",
        None,
        outcomes(200, 200, 403, 200, 302),
    ),
    (
        "resend what failed page of A's request",
        "get",
        "/admin/resync/resyncrequest/resend-failed/?step__request__id__exact={req_a}",
        None,
        outcomes(400, 400, 403, 400, 302),  # charlie's Error Log holds none of A's: the same 400
    ),
    (
        "alice's State Resync Requested alert page",
        "get",
        "/admin/alerts/processalert/{alert_a}/change/",
        None,
        outcomes(404, 200, 404, 404, 302),
    ),
    (
        "state request's admin page",
        "get",
        "/admin/resync/resyncrequest/{req_state}/change/",
        None,
        outcomes(200, 404, 404, 404, 302),
    ),
    (
        "state request's step page",
        "get",
        "/admin/history/disbatchhistory/{step_state}/change/",
        None,
        outcomes(200, 404, 404, 404, 302),
    ),
    # The admin's upload (loads.views): district data W on the district; the world's stella
    # holds it (loads 0002), alice, bob and charlie do not. Every upload list shows one's own.
    ("upload form of A", "get", "/admin/loads/upload/new/101/", None, outcomes(200, 403, 403, 404, 302)),
    ("upload form of B", "get", "/admin/loads/upload/new/202/", None, outcomes(200, 404, 404, 403, 302)),
    (
        "A's upload page",
        "get",
        "/admin/loads/upload/{upload_a}/change/",
        None,
        outcomes(200, 403, 403, 404, 302),
    ),
    (
        "A's upload progress",
        "get",
        "/admin/loads/upload/{upload_a}/progress/",
        None,
        outcomes(200, 403, 403, 404, 302),
    ),
    ("uploads", "get", "/admin/loads/upload/", None, outcomes(200, 200, 200, 200, 302)),
    ("loads", "get", "/admin/loads/load/", None, outcomes(200, 200, 200, 200, 302)),
    # Schedules (issue 15): each sees their own districts' district-level ones; the rest in test_schedules.
    ("schedules", "get", "/api/v1/schedules/", None, outcomes(200, 200, 200, 200, 401)),
    ("schedules admin", "get", "/admin/schedules/schedule/", None, outcomes(200, 200, 200, 200, 302)),
    ("add a schedule page", "get", "/admin/schedules/schedule/add/", None, outcomes(200, 403, 403, 403, 302)),
    (
        "state's copy export page",
        "get",
        "/admin/resync/staterecord/?object=District",
        None,
        outcomes(200, 404, 404, 404, 302),
    ),
]


@pytest.fixture
def world(cast, queue, settings, tmp_path) -> dict:
    """A district request of A, a state request to A and a district request of B (not run)."""

    def resync(district, user, level="district"):
        checked = actions.check_resync(district, None, ["District"], False, user=user, level=level)
        return actions.do_request_resync(checked)

    for district in (cast.district, cast.other):
        add(district, "District", 1)  # something to move: an empty object's step ends at once
    req_a = resync(cast.district, cast.alice)
    req_state = resync(cast.district, cast.stella, ResyncRequest.Level.STATE)
    req_b = resync(cast.other, cast.charlie)
    # Sent a minute ago: a door's own send of the same is a new request, not a double click.
    ResyncRequest.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    groups.grant(Group, Permission, {groups.STATE_ADMINS: groups.LOAD_STATE_PERMS})  # loads 0002
    settings.UPLOAD_DIR = tmp_path  # the upload's file
    upload_a = Upload.objects.create(
        district=cast.district,
        sync_object=SyncObject.objects.get(name="District"),
        name="district.csv",
        file=ContentFile(b"record_id\n1\n", name="district.csv"),
        uploaded_by=cast.stella,
    )
    step = lambda r: DISBatchHistory.objects.get(request=r).pk  # noqa: E731
    return {
        "users": {
            "stella": cast.stella,
            "alice": cast.alice,
            "bob": cast.bob,
            "charlie": cast.charlie,
            "anon": None,
        },
        "ids": {
            "req_a": req_a.pk,
            "req_state": req_state.pk,
            "req_b": req_b.pk,
            "step_a": step(req_a),
            "step_state": step(req_state),
            "alert_a": ProcessAlert.objects.get(user=cast.alice).pk,
            "upload_a": upload_a.pk,
        },
    }


def knock(client, user, method: str, url: str, body) -> int:
    """One actor's request at one door: a session for the admin, a token for the API."""
    client.logout()
    headers = {}
    if user is not None and url.startswith("/admin/"):
        client.force_login(user)
    elif user is not None:
        headers["authorization"] = f"Token {Token.objects.get_or_create(user=user)[0].key}"
    kwargs = {"content_type": "application/json"} if body is not None else {}
    response = getattr(client, method)(url, body, headers=headers, **kwargs)
    if response.status_code == 302:
        assert "/admin/login/" in response["Location"]
    return response.status_code


@pytest.mark.parametrize("door, method, url, body, expected", DOORS, ids=[d[0] for d in DOORS])
def test_it_opens_each_door_to_the_right_people_only(client, world, door, method, url, body, expected):
    got, stored = {}, {}
    for actor in ACTORS:
        before = ResyncRequest.objects.count()
        got[actor] = knock(client, world["users"][actor], method, url.format(**world["ids"]), body)
        stored[actor] = ResyncRequest.objects.count() - before
    assert got == expected
    # Only a 201 stores a request: a refused send leaves nothing behind.
    assert stored == {actor: int(status == 201) for actor, status in got.items()}


@COMMITTED
@pytest.mark.parametrize(
    "actor, groups",
    [
        ("stella", lambda w: {events.STATE_GROUP}),
        ("alice", lambda w: {events.district_group(w["a"])}),
        ("bob", lambda w: {events.district_group(w["a"])}),
        ("charlie", lambda w: {events.district_group(w["b"])}),
    ],
)
@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}})
async def test_it_lets_each_user_hear_only_their_own_on_the_websocket(cast, actor, groups):
    user = {"stella": cast.stella, "alice": cast.alice, "bob": cast.bob, "charlie": cast.charlie}[actor]
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    heard = set(get_channel_layer().groups) - {events.user_group(user.pk)}
    assert heard == groups({"a": cast.district.pk, "b": cast.other.pk})
    await communicator.disconnect()


@COMMITTED
async def test_it_refuses_the_websocket_to_an_anonymous_visitor():
    communicator = WebsocketCommunicator(application, "/ws/live/", headers=[(b"origin", b"http://localhost")])
    connected, code = await communicator.connect()
    assert (connected, code) == (False, 4401)


@pytest.mark.parametrize("actor", ["stella", "alice", "bob", "charlie"])
def test_it_grants_a_known_user_a_known_district_only(cast, actor, capsys):
    user = {"stella": cast.stella, "alice": cast.alice, "bob": cast.bob, "charlie": cast.charlie}[actor]
    with pytest.raises(CommandError, match="No district with code '999'."):
        call_command("grant_district", actor, "999")
    with pytest.raises(CommandError, match="No user named 'ghost'."):
        call_command("grant_district", "ghost", "202")
    call_command("grant_district", actor, "202", "--objects", "Enrollment")
    assert capsys.readouterr().out == f"{actor} may resync district 202: Enrollment\n"
    user = type(user).objects.get(pk=user.pk)  # a fresh object: permissions are cached per instance
    assert rights.may_resync(user, cast.other)
    assert "Enrollment" in rights.object_names(user)


# ---- Verification runs the state started (issue 11): the state's alone --------------
# Bob holds no Verification Summary right: the API refuses him the feature (403) before
# any run is looked up; the admin looks the run up first, and he may not know of it (404).
VERIFICATION_DOORS = [
    (
        "state's verification",
        "get",
        "/api/v1/verifications/{verify_state}/",
        outcomes(200, 404, 403, 404, 401),
    ),
    (
        "state's verification's differences",
        "get",
        "/api/v1/verifications/{verify_state}/differences/",
        outcomes(200, 404, 403, 404, 401),
    ),
    (
        "state's verification's one-click resync",
        "post",
        "/api/v1/verifications/{verify_state}/resync/",
        outcomes(201, 404, 403, 404, 401),
    ),
    ("A's verification", "get", "/api/v1/verifications/{verify_a}/", outcomes(200, 200, 403, 404, 401)),
    (
        "state's verification page",
        "get",
        "/admin/verification/verificationrun/{verify_state}/change/",
        outcomes(200, 404, 404, 404, 302),
    ),
    (
        "state's verification result page",
        "get",
        "/admin/verification/disverificationresult/{verify_state_result}/change/",
        outcomes(200, 404, 404, 404, 302),
    ),
    (
        "state's verification difference page",
        "get",
        "/admin/verification/disverificationdifference/{verify_state_difference}/change/",
        outcomes(200, 404, 404, 404, 302),
    ),
    (
        "A's verification page",
        "get",
        "/admin/verification/verificationrun/{verify_a}/change/",
        outcomes(200, 200, 403, 404, 302),
    ),
]


@pytest.fixture
def verification_world(world, tool_cast) -> dict:
    """world, with the groups' verification rights, plus two finished verifications of A
    that found District 1 only at the district: one stella asked for, one alice did."""
    from resync.models import SyncObject
    from verification.models import DISVerificationDifference, DISVerificationResult, VerificationRun

    district = SyncObject.objects.get(name="District")

    def finished(user, level):
        run = VerificationRun.objects.create(
            district=tool_cast.district,
            school_year=2027,
            level=level,
            sync_objects=["District"],
            requested_by=user,
            status=VerificationRun.Status.FINISHED,
            objects_done=1,
            records_compared=1,
        )
        result = DISVerificationResult.objects.create(run=run, sync_object=district, only_district=1)
        difference = DISVerificationDifference.objects.create(
            result=result, kind=DISVerificationDifference.Kind.ONLY_DISTRICT, record_id=1
        )
        return run, result, difference

    state_run, state_result, state_difference = finished(tool_cast.stella, ResyncRequest.Level.STATE)
    own, _result, _difference = finished(tool_cast.alice, ResyncRequest.Level.DISTRICT)
    ids = {
        "verify_state": state_run.pk,
        "verify_state_result": state_result.pk,
        "verify_state_difference": state_difference.pk,
        "verify_a": own.pk,
    }
    return world | {"ids": world["ids"] | ids}


@pytest.mark.parametrize(
    "door, method, url, expected", VERIFICATION_DOORS, ids=[d[0] for d in VERIFICATION_DOORS]
)
def test_it_keeps_the_states_verifications_the_states(
    client, verification_world, door, method, url, expected
):
    got, stored = {}, {}
    for actor in ACTORS:
        before = ResyncRequest.objects.count()
        user = verification_world["users"][actor]
        got[actor] = knock(client, user, method, url.format(**verification_world["ids"]), None)
        stored[actor] = ResyncRequest.objects.count() - before
    assert got == expected
    assert stored == {actor: int(status == 201) for actor, status in got.items()}


# ---- A socket whose rights end while it is open ------------------------------------


def _revoke_a(cast):
    from guardian.shortcuts import remove_perm

    remove_perm(rights.DISTRICT, cast.alice, cast.district)


def _leave_state_admins(cast):
    from django.contrib.auth.models import Group

    from resync.groups import STATE_ADMINS

    cast.stella.groups.remove(Group.objects.get(name=STATE_ADMINS))


def _deactivate_bob(cast):
    cast.bob.is_active = False
    cast.bob.save()


def _delete_charlie(cast):
    cast.charlie.delete()


# (actor, how their right ends, the group they heard, whether the socket stays open)
ENDINGS = [
    ("alice", _revoke_a, lambda c: events.district_group(c.district.pk), True),
    ("stella", _leave_state_admins, lambda c: events.STATE_GROUP, True),
    ("bob", _deactivate_bob, lambda c: events.district_group(c.district.pk), False),
    ("charlie", _delete_charlie, lambda c: events.district_group(c.other.pk), False),
]


@COMMITTED
@pytest.mark.parametrize(
    "actor, end, heard, stays_open", ENDINGS, ids=[f"{e[0]}-{e[1].__name__.strip('_')}" for e in ENDINGS]
)
@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}})
async def test_it_stops_telling_a_socket_what_its_ended_right_let_it_hear(
    cast, actor, end, heard, stays_open
):
    from asgiref.sync import sync_to_async

    user = {"stella": cast.stella, "alice": cast.alice, "bob": cast.bob, "charlie": cast.charlie}[actor]
    group = heard(cast)
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    assert (await communicator.connect())[0]
    await communicator.receive_json_from()  # alert.count
    layer = get_channel_layer()
    assert group in layer.groups

    await sync_to_async(end)(cast)
    await layer.group_send(group, {"type": "step.status", "district": cast.district.pk, "object": "School"})
    if stays_open:
        # An alert sent after the step arrives first: the step never reached the socket.
        await sync_to_async(ProcessAlert.objects.notify)([user], name="marker", category="y", message="m")
        got = await communicator.receive_json_from(timeout=5)
        if got["type"] == "resync":  # the socket tells its page to catch up, whenever it left
            got = await communicator.receive_json_from(timeout=5)
        assert got["name"] == "marker"
    else:
        output = await communicator.receive_output(timeout=5)
        assert (output["type"], output["code"]) == ("websocket.close", 4401)
    assert group not in layer.groups
    await communicator.disconnect()
    assert layer.groups == {}


# What a page fetches when its live socket (re)opens: the same rights as the page itself.
LIVE_STATE_DOORS = [
    (
        "tool state of A",
        "get",
        "/admin/resync/district/101/tool/state/",
        None,
        outcomes(200, 200, 200, 404, 302),
    ),
    (
        "tool state of B",
        "get",
        "/admin/resync/district/202/tool/state/",
        None,
        outcomes(200, 404, 404, 200, 302),
    ),
    (
        "state tool state",
        "get",
        "/admin/resync/district/state-tool/state/",
        None,
        outcomes(200, 404, 404, 404, 302),
    ),
]


@pytest.mark.parametrize(
    "door, method, url, body, expected", LIVE_STATE_DOORS, ids=[d[0] for d in LIVE_STATE_DOORS]
)
def test_it_opens_each_live_state_door_to_the_right_people_only(
    client, world, door, method, url, body, expected
):
    got = {actor: knock(client, world["users"][actor], method, url, body) for actor in ACTORS}
    assert got == expected


# ---- The load API (issue 13): district data W on top of the district right ------------
# stella holds it through her group (loads 0002), alice and charlie one by one; bob sees
# district A without it (403); charlie may not know A exists (404).
DISTRICT_A = {"name": "Adair County", "code": "101"}
LOAD_DOORS = [
    (
        "upsert A's records",
        "post",
        "/api/v1/district-records/101/District/",
        [{"record_id": 2, **DISTRICT_A}],
        outcomes(200, 200, 403, 404, 401),
    ),
    (
        "snapshot of A's object",
        "put",
        "/api/v1/district-records/101/District/",
        [{"record_id": 2, **DISTRICT_A}],
        outcomes(200, 200, 403, 404, 401),
    ),
    (
        "delete A's records by id",
        "post",
        "/api/v1/district-records/101/District/delete/",
        {"record_ids": [3]},
        outcomes(200, 200, 403, 404, 401),
    ),
    (
        "upsert B's records",
        "post",
        "/api/v1/district-records/202/District/",
        [{"record_id": 2, "name": "Boone County", "code": "202"}],
        outcomes(200, 404, 404, 200, 401),
    ),
    ("loads", "get", "/api/v1/loads/", None, outcomes(200, 200, 200, 200, 401)),
    ("A's load", "get", "/api/v1/loads/{load_a}/", None, outcomes(200, 200, 200, 404, 401)),
]


@pytest.fixture
def load_world(world, cast) -> dict:
    from django.contrib.auth.models import Group, Permission

    from loads.models import Load
    from resync import groups
    from resync.models import SyncObject

    groups.grant(Group, Permission, {groups.STATE_ADMINS: groups.LOAD_STATE_PERMS})
    for user in (cast.alice, cast.charlie):
        user.user_permissions.add(Permission.objects.get(codename="load_district_data"))
    load = Load.objects.create(district=cast.district, sync_object=SyncObject.objects.get(name="District"))
    return world | {"ids": world["ids"] | {"load_a": load.pk}}


@pytest.mark.parametrize("door, method, url, body, expected", LOAD_DOORS, ids=[d[0] for d in LOAD_DOORS])
def test_it_lets_only_district_data_w_holders_load_their_districts(
    client, load_world, door, method, url, body, expected
):
    from loads.models import Load

    got, logged = {}, {}
    for actor in ACTORS:
        before = Load.objects.count()
        got[actor] = knock(client, load_world["users"][actor], method, url.format(**load_world["ids"]), body)
        logged[actor] = Load.objects.count() - before
    assert got == expected
    # A load call that is let in is recorded as a Load row; a refused one leaves nothing.
    writes = method != "get"
    assert logged == {actor: int(writes and status == 200) for actor, status in got.items()}


# ---- Cancelling a waiting request (issue 14, item 4) ------------------------------------
# In `world` A's request runs and the state's request to A waits; wait_a is alice's, waiting
# behind it. Each actor knocks on a fresh world: a cancel done cannot be done again.
CANCEL_DOORS = [
    ("cancel A's waiting request", "/api/v1/requests/{wait_a}/cancel/", outcomes(200, 200, 403, 404, 401)),
    ("cancel A's running request", "/api/v1/requests/{req_a}/cancel/", outcomes(400, 400, 400, 404, 401)),
    (
        "cancel the state request by requests/",
        "/api/v1/requests/{req_state}/cancel/",
        outcomes(200, 404, 404, 404, 401),
    ),
    (
        "cancel the state request",
        "/api/v1/state-requests/{req_state}/cancel/",
        outcomes(200, 403, 403, 403, 401),
    ),
    (
        "cancel page of A's waiting request",
        "/admin/resync/resyncrequest/{wait_a}/cancel/",
        outcomes(303, 303, 403, 404, 302),
    ),
    (
        "cancel page of the state request",
        "/admin/resync/resyncrequest/{req_state}/cancel/",
        outcomes(303, 404, 404, 404, 302),
    ),
]


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("door, url, expected", CANCEL_DOORS, ids=[d[0] for d in CANCEL_DOORS])
def test_it_lets_only_the_right_people_cancel_a_waiting_request(
    client, world, cast, door, url, expected, actor
):
    checked = actions.check_resync(cast.district, None, ["District"], True, user=cast.alice)
    wait_a = actions.do_request_resync(checked)
    ids = world["ids"] | {"wait_a": wait_a.pk}
    got = knock(client, world["users"][actor], "post", url.format(**ids), None)
    assert got == expected[actor]
    cancelled = ResyncRequest.objects.filter(status=ResyncRequest.Status.CANCELLED).count()
    assert cancelled == int(got in (200, 303))


# ---- The audit trail (issue 15): state R and W, or audit R (District Administrators, audit 0002)
# Each reads their districts' entries (test_audit); nobody writes one (405 once let in).
AUDIT_DOORS = [
    ("audit trail", "get", "/api/v1/audit/", None, outcomes(200, 200, 403, 200, 401)),
    ("audit trail write", "post", "/api/v1/audit/", {}, outcomes(405, 405, 403, 405, 401)),
    ("audit report", "get", "/admin/audit/auditentry/", None, outcomes(200, 200, 403, 200, 302)),
    (
        "audit report CSV",
        "get",
        "/admin/audit/auditentry/export.csv",
        None,
        outcomes(200, 200, 403, 200, 302),
    ),
    ("add an audit entry", "get", "/admin/audit/auditentry/add/", None, outcomes(403, 403, 403, 403, 302)),
]


@pytest.mark.parametrize("door, method, url, body, expected", AUDIT_DOORS, ids=[d[0] for d in AUDIT_DOORS])
def test_it_lets_only_audit_r_holders_read_the_trail(client, world, door, method, url, body, expected):
    from audit.models import AuditEntry
    from audit.rights import GROUPS

    groups.grant(Group, Permission, GROUPS)  # audit 0002 (the cast's groups are reset to their base)
    before = AuditEntry.objects.count()
    got = {actor: knock(client, world["users"][actor], method, url, body) for actor in ACTORS}
    assert got == expected
    assert AuditEntry.objects.count() == before
