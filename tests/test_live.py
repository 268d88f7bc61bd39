"""The live websocket: session-authenticated, origin-checked, and only the groups a user has rights to."""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from alerts.models import ProcessAlert
from core import events, timefmt
from live.consumers import LiveConsumer
from resync.models import ResyncRequest
from statesync.asgi import application
from tool import actions
from verification import actions as verify

from .conftest import BOTH, chain

# Transactional: the consumers read the test's rows through database_sync_to_async, on another thread, and the jobs run from the queue RQ fills on commit.
pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)
IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def connect_as(user):
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    return communicator


async def connected(*users):
    """One open socket per user, their first alert.count read."""
    sockets = [connect_as(u) for u in users]
    for s in sockets:
        assert (await s.connect())[0]
        assert (await s.receive_json_from())["type"] == "alert.count"
    return sockets


async def drain(communicator) -> list[dict]:
    """Every message waiting on `communicator`."""
    got = []
    while not await communicator.receive_nothing(timeout=0.3):
        got.append(await communicator.receive_json_from())
    return got


def perform_queued(queue) -> None:
    """Run the queued jobs here, in this thread, in order. (An RQ worker installs signal
    handlers, which only the main thread may, and that one runs the test's event loop.)"""
    while queue.count:
        job = queue.get_jobs()[0]
        queue.remove(job)
        job.perform()


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_sends_a_district_user_their_districts_steps_and_their_alerts(cast):
    alice = connect_as(cast.alice)
    charlie = connect_as(cast.charlie)
    assert (await alice.connect())[0] and (await charlie.connect())[0]
    assert await alice.receive_json_from() == {"type": "alert.count", "unread": 0}
    await charlie.receive_json_from()

    layer = get_channel_layer()
    step = {"type": "step.status", "district": cast.district.pk, "object": "Enrollment", "colour": "gray"}
    await layer.group_send(events.district_group(cast.district.pk), step)
    assert (await alice.receive_json_from())["object"] == "Enrollment"
    await sync_to_async(ProcessAlert.objects.notify)([cast.alice], name="x", category="y", message="m")
    got = await alice.receive_json_from()
    assert (got["type"], got["unread"]) == ("alert.new", 1)
    assert await charlie.receive_nothing()  # another district's user hears nothing

    await alice.disconnect()
    await charlie.disconnect()
    assert layer.groups == {}  # every group left on disconnect


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_hands_a_push_of_several_steps_over_as_a_step_each(cast):
    """runner.lifecycle.push_steps: a batch's steps in one push, each reaching the
    browser as the step.status it would have been alone, and only where it may."""
    alice, charlie, stella = await connected(cast.alice, cast.charlie, cast.stella)
    layer = get_channel_layer()
    steps = [
        {"type": "step.status", "district": cast.district.pk, "object": name, "colour": "green"}
        for name in ("School", "Calendar")
    ]
    push = {"type": "steps.status", "request": 1, "district": cast.district.pk, "steps": steps}
    await layer.group_send(events.district_group(cast.district.pk), push)
    await layer.group_send(events.STATE_GROUP, push)
    assert await drain(alice) == steps
    assert await drain(stella) == steps
    assert await charlie.receive_nothing()  # another district's user hears none of them
    for s in (alice, charlie, stella):
        await s.disconnect()
    assert layer.groups == {}


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_puts_a_state_user_in_the_state_group_only(cast):
    stella = connect_as(cast.stella)
    assert (await stella.connect())[0]
    await stella.receive_json_from()
    layer = get_channel_layer()
    assert set(layer.groups) == {events.STATE_GROUP, events.user_group(cast.stella.pk)}
    await stella.disconnect()
    assert layer.groups == {}


async def test_it_refuses_an_anonymous_connection():
    communicator = WebsocketCommunicator(application, "/ws/live/", headers=[(b"origin", b"http://localhost")])
    connected, code = await communicator.connect()
    assert not connected and code == 4401


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_refuses_a_foreign_origin(cast, client):
    """Alice's real session opens the socket from the site itself; from another origin
    the same session is denied at the handshake by the origin validator, before the
    consumer could refuse anyone (it closes with 4401, the denier with the default)."""
    assert "evil.example" not in settings.ALLOWED_HOSTS
    own = await sync_to_async(session_socket)(client, cast.alice)
    assert (await own.connect())[0]
    await own.disconnect()
    foreign = await sync_to_async(session_socket)(client, cast.alice, origin=b"http://evil.example")
    assert await foreign.connect() == (False, 1000)


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_feeds_the_state_tool_and_keeps_a_state_requests_steps_from_the_district(cast, queue):
    await sync_to_async(chain)(cast.district)
    stella, alice, charlie = await connected(cast.stella, cast.alice, cast.charlie)

    def state_request() -> ResyncRequest:
        checked = actions.check_resync(
            cast.district, None, ["School"], True, user=cast.stella, level=ResyncRequest.Level.STATE
        )
        request = actions.do_request_resync(checked)
        perform_queued(queue)
        return request

    request = await sync_to_async(state_request)()
    got = await drain(stella)
    steps = [m for m in got if m["type"] == "step.status"]
    assert {m["object"] for m in steps} == {"District", "School"}
    assert {(m["district"], m["request"]) for m in steps} == {(cast.district.pk, request.pk)}
    assert steps[0]["colour"] == "gray" and steps[-1]["colour"] == "green"
    finished = {
        "type": "request.finished",
        "request": request.pk,
        "district": cast.district.pk,
        "outcome": "green",
    }
    # What turns the state tool's row green: the request, and which district it was.
    assert [m for m in got if m["type"] == "request.finished"] == [finished]

    # The district hears that the state asked (its Process Alert), never what or how it went.
    heard = await drain(alice)
    assert [(m["type"], m["name"]) for m in heard] == [("alert.new", "State Resync Requested")]
    assert "School" not in str(heard) and "request" not in heard[0]
    assert await drain(charlie) == []

    for s in (stella, alice, charlie):
        await s.disconnect()
    assert get_channel_layer().groups == {}


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_tells_the_district_tool_which_district_a_finished_request_was(cast, queue):
    await sync_to_async(chain)(cast.district)
    alice, charlie = await connected(cast.alice, cast.charlie)

    def district_request() -> ResyncRequest:
        request = actions.do_request_resync(actions.check_resync(cast.district, None, ["District"], False))
        perform_queued(queue)
        return request

    request = await sync_to_async(district_request)()
    got = await drain(alice)
    assert [m["type"] for m in got] == ["step.status", "step.status", "request.finished"]
    assert got[-1]["district"] == cast.district.pk and got[-1]["request"] == request.pk
    assert await drain(charlie) == []
    await alice.disconnect()
    await charlie.disconnect()
    assert get_channel_layer().groups == {}


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_pushes_a_verifications_progress_to_those_who_may_see_the_run(tool_cast, queue):
    await sync_to_async(chain)(tool_cast.district)
    # Bob has district A's right but not Verification Summary R; Charlie has district B only.
    stella, alice, bob, charlie = await connected(
        tool_cast.stella, tool_cast.alice, tool_cast.bob, tool_cast.charlie
    )
    layer = get_channel_layer()
    assert events.VERIFICATION_STATE_GROUP in layer.groups
    assert len(layer.groups[events.verification_group(tool_cast.district.pk)]) == 1  # Alice, not Bob
    assert len(layer.groups[events.verification_group(tool_cast.other.pk)]) == 1  # Charlie

    def verification():
        checked = verify.check_verification(
            tool_cast.district, None, ["District", "School"], user=tool_cast.alice
        )
        run = verify.do_request_verification(checked)
        perform_queued(queue)
        return run

    run = await sync_to_async(verification)()
    for socket in (stella, alice):
        got = [m for m in await drain(socket) if m["type"] == "verification.progress"]
        assert {(m["run"], m["district"]) for m in got} == {(run.pk, tool_cast.district.pk)}
        assert got[0]["status"] == "running" and got[0]["objects_done"] == 0
        done = [m["objects_done"] for m in got]
        assert done == sorted(done) and 1 in done  # one push per object compared, at least
        assert got[-1] | {"records_compared": 0} == {
            "type": "verification.progress",
            "run": run.pk,
            "district": tool_cast.district.pk,
            "status": "finished",
            "status_display": "Finished",
            "objects_done": 2,
            "objects": 2,
            "records_compared": 0,
            "progress": "2/2 objects, 2 records",
            "to_resync": 2,  # nothing was resynced: District and School are only at the district
            "not_allowed": 0,
        }
        assert all("to_resync" not in m for m in got[:-1])  # totals only once they are final
    assert await drain(bob) == []
    assert await drain(charlie) == []

    for s in (stella, alice, bob, charlie):
        await s.disconnect()
    assert layer.groups == {}


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_tells_open_pages_a_verification_whose_worker_died_is_queued_again(tool_cast, queue):
    from verification.models import VerificationRun

    def dead_run():
        return VerificationRun.objects.create(
            district=tool_cast.district,
            school_year=2027,
            sync_objects=["District", "School"],
            requested_by=tool_cast.alice,
            status=VerificationRun.Status.RUNNING,
            worker="gone.example:1",  # another host, silent for an hour
            heartbeat_at=timezone.now() - timedelta(hours=1),
            attempts=1,
            objects_done=1,
            records_compared=5,
        )

    (alice,) = await connected(tool_cast.alice)
    run = await sync_to_async(dead_run)()
    assert await sync_to_async(verify.recover_stale_runs)() == [run.pk]
    got = [m for m in await drain(alice) if m["type"] == "verification.progress"]
    assert [(m["run"], m["status"], m["objects_done"], m["records_compared"]) for m in got] == [
        (run.pk, "queued", 0, 0)
    ]
    await alice.disconnect()
    assert get_channel_layer().groups == {}


# ---- Rights that end while the socket is open ------------------------------------


def step_of(district) -> dict:
    return {"type": "step.status", "district": district.pk, "object": "Enrollment", "colour": "gray"}


async def alert(user, name: str = "marker") -> None:
    await sync_to_async(ProcessAlert.objects.notify)([user], name=name, category="y", message="m")


async def next_after_push(socket, user, district) -> dict:
    """Push a step of `district`, then an alert to `user`, and return what the socket reads
    first: the alert when the step did not reach it (messages arrive in order)."""
    await get_channel_layer().group_send(events.district_group(district.pk), step_of(district))
    await alert(user)
    return await first_but_resync(socket)


async def first_but_resync(socket) -> dict:
    """The next message, past the "resync" a socket that left groups sends its page
    (when it comes is the consumer's business, not the order of pushes)."""
    while (got := await socket.receive_json_from(timeout=5))["type"] == "resync":
        pass
    return got


def session_socket(client, user, origin: bytes = b"http://localhost") -> WebsocketCommunicator:
    """A socket through the whole ASGI app, authenticated by a real login session's cookie."""
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    return WebsocketCommunicator(
        application, "/ws/live/", headers=[(b"origin", origin), (b"cookie", cookie.encode())]
    )


async def closed_with(socket) -> int:
    output = await socket.receive_output(timeout=5)
    assert output["type"] == "websocket.close"
    return output["code"]


async def until(condition, what: str) -> None:
    """Wait for `condition()` (a re-check runs on its own timer), failing after 10 s."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_stops_pushing_a_district_whose_right_was_revoked_to_an_open_socket(cast, caplog):
    from guardian.shortcuts import remove_perm

    from resync import rights

    (alice,) = await connected(cast.alice)
    assert (await next_after_push(alice, cast.alice, cast.district))["type"] == "step.status"
    await alice.receive_json_from()  # the marker alert

    await sync_to_async(remove_perm)(rights.DISTRICT, cast.alice, cast.district)
    got = await next_after_push(alice, cast.alice, cast.district)
    assert (got["type"], got["name"]) == ("alert.new", "marker")  # the step never came
    assert events.district_group(cast.district.pk) not in get_channel_layer().groups
    assert "refused alice at websocket: hear district." in caplog.text
    await alice.disconnect()
    assert get_channel_layer().groups == {}


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_lets_an_open_socket_hear_a_district_granted_since_it_opened(cast):
    from guardian.shortcuts import assign_perm

    from resync import rights

    (charlie,) = await connected(cast.charlie)
    await sync_to_async(assign_perm)(rights.DISTRICT, cast.charlie, cast.district)
    layer = get_channel_layer()
    await until(lambda: events.district_group(cast.district.pk) in layer.groups, "charlie joined A")
    assert (await next_after_push(charlie, cast.charlie, cast.district))["type"] == "step.status"
    await charlie.disconnect()
    assert get_channel_layer().groups == {}


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_closes_the_socket_of_a_user_deactivated_or_deleted(cast):
    alice, charlie = await connected(cast.alice, cast.charlie)

    def deactivate():
        cast.alice.is_active = False
        cast.alice.save()

    await sync_to_async(deactivate)()
    assert await closed_with(alice) == 4401
    await sync_to_async(cast.charlie.delete)()
    assert await closed_with(charlie) == 4401
    # Both left every group before closing: nothing more can reach them.
    assert get_channel_layer().groups == {}


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_drops_the_state_group_of_a_user_taken_out_of_the_state_admins(cast):
    from django.contrib.auth.models import Group

    from resync import groups

    (stella,) = await connected(cast.stella)
    group = await sync_to_async(Group.objects.get)(name=groups.STATE_ADMINS)
    await sync_to_async(group.user_set.remove)(cast.stella)  # the reverse side of the m2m
    await get_channel_layer().group_send(events.STATE_GROUP, step_of(cast.district))
    await alert(cast.stella)
    assert (await first_but_resync(stella))["type"] == "alert.new"
    assert events.STATE_GROUP not in get_channel_layer().groups
    await stella.disconnect()


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_drops_the_verification_groups_when_the_group_loses_verification_summary_r(tool_cast):
    from django.contrib.auth.models import Group, Permission

    from resync import groups
    from verification.rights import VERIFY_VIEW

    (alice,) = await connected(tool_cast.alice)
    assert events.verification_group(tool_cast.district.pk) in get_channel_layer().groups

    def revoke():
        app, codename = VERIFY_VIEW.split(".")
        perm = Permission.objects.get(content_type__app_label=app, codename=codename)
        Group.objects.get(name=groups.DISTRICT_ADMINS).permissions.remove(perm)

    await sync_to_async(revoke)()
    progress = {"type": "verification.progress", "run": 1, "district": tool_cast.district.pk}
    await get_channel_layer().group_send(events.verification_group(tool_cast.district.pk), progress)
    await alert(tool_cast.alice)
    assert (await first_but_resync(alice))["type"] == "alert.new"
    assert events.verification_group(tool_cast.district.pk) not in get_channel_layer().groups
    assert (
        events.district_group(tool_cast.district.pk) in get_channel_layer().groups
    )  # the district right stays
    await alice.disconnect()
    assert get_channel_layer().groups == {}


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_closes_the_sockets_of_a_session_that_logged_out_and_only_those(cast, client):
    from django.test import Client

    first = await sync_to_async(session_socket)(client, cast.alice)
    second = await sync_to_async(session_socket)(Client(), cast.alice)
    for socket in (first, second):
        assert (await socket.connect())[0]
        assert (await socket.receive_json_from())["type"] == "alert.count"

    response = await sync_to_async(client.post)("/admin/logout/")
    assert response.status_code == 200
    assert await closed_with(first) == 4401
    # The user's other login session keeps its socket and still hears its district.
    assert (await next_after_push(second, cast.alice, cast.district))["type"] == "step.status"
    await second.disconnect()
    await first.disconnect()
    assert get_channel_layer().groups == {}


@override_settings(CHANNEL_LAYERS=IN_MEMORY, LIVE_RECHECK_SECONDS=0.05)
async def test_it_rechecks_on_a_timer_what_no_signal_tells(cast, client):
    from django.contrib.sessions.models import Session

    from resync.models import DistrictUserObjectPermission

    (alice,) = await connected(cast.alice)
    bob = await sync_to_async(session_socket)(client, cast.bob)
    assert (await bob.connect())[0]
    await bob.receive_json_from()
    layer = get_channel_layer()

    # A right removed by bulk SQL sends no signal; the next tick drops the district.
    def raw_revoke():
        rows = DistrictUserObjectPermission.objects.filter(user=cast.alice)
        return rows._raw_delete(rows.db)

    assert await sync_to_async(raw_revoke)() == 1
    await until(
        lambda: len(layer.groups.get(events.district_group(cast.district.pk), {})) == 1, "alice left A"
    )
    assert (await next_after_push(alice, cast.alice, cast.district))["type"] == "alert.new"
    assert (await bob.receive_json_from())["type"] == "step.status"  # Bob still has A

    # A session that expires logs nobody out; the next tick closes its socket.
    expire = Session.objects.update
    await sync_to_async(expire)(expire_date=timezone.now() - timedelta(seconds=1))
    assert await closed_with(bob) == 4401
    await alice.disconnect()
    await bob.disconnect()
    assert layer.groups == {}


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_answers_a_binary_or_garbled_frame_and_stays_open(cast):
    (alice,) = await connected(cast.alice)
    await alice.send_to(bytes_data=b"\x00\xff")
    assert await alice.receive_json_from() == {
        "type": "error",
        "error": "This socket takes JSON text frames, not binary.",
    }
    await alice.send_to(text_data="{not json")
    assert await alice.receive_json_from() == {
        "type": "error",
        "error": "This socket takes JSON text frames: not JSON.",
    }
    await alice.send_to(text_data='{"type": "hello"}')  # JSON is fine: the browser only listens
    assert (await next_after_push(alice, cast.alice, cast.district))["type"] == "step.status"
    await alice.disconnect()
    assert get_channel_layer().groups == {}


# ---- What a page fetches when its socket (re)opens -----------------------------------


def test_it_gives_a_reopened_district_tool_its_rows_but_never_a_state_requests_steps(
    client, cast, queue, django_assert_max_num_queries
):
    from django.db import connection

    from history.models import DISBatchHistory

    from .conftest import run_queue

    chain(cast.district)
    mine = actions.do_request_resync(
        actions.check_resync(cast.district, None, ["District"], False, user=cast.alice)
    )
    run_queue()
    actions.do_request_resync(
        actions.check_resync(
            cast.district, None, ["School"], True, user=cast.stella, level=ResyncRequest.Level.STATE
        )
    )
    run_queue()
    url = "/admin/resync/district/101/tool/state/?year=2027"

    client.force_login(cast.alice)
    body = client.get(url).json()
    step = DISBatchHistory.objects.get(request=mine)
    assert [p["request"] for p in body.pop("progress")] == [mine.pk]  # the state's request is not hers
    assert f"Resync {mine.pk}</strong>" in body.pop("progress_html")
    assert body == {
        "district": cast.district.pk,
        "year": 2027,
        "steps": [
            {
                "step": step.pk,
                "object": "District",
                "request": mine.pk,
                "status": "green",
                "processed": 1,
                "errors": 0,
                "colour": "green",
                "started_at": step.started_at.isoformat(),
                "started_at_text": timefmt.when(step.started_at, cast.district),
            }
        ],
    }  # the state request's District and School steps are the state's to know

    client.force_login(cast.stella)
    seen = {(s["object"], s["request"]) for s in client.get(url).json()["steps"]}
    assert seen == {("District", mine.pk + 1), ("School", mine.pk + 1)}

    client.force_login(cast.charlie)
    assert client.get(url).status_code == 404  # another district's tool

    # As cheap with a long history as with a short one.
    client.force_login(cast.alice)
    connection.queries_log.clear()
    with django_assert_max_num_queries(30) as few:
        client.get(url)
    baseline = len(few.captured_queries)
    for _ in range(3):
        actions.do_request_resync(actions.check_resync(cast.district, None, None, False, user=cast.alice))
        run_queue()
    connection.queries_log.clear()
    with django_assert_max_num_queries(baseline):
        assert len(client.get(url).json()["steps"]) > 1


def test_it_gives_a_reopened_state_tool_each_districts_latest_request(client, cast, queue):
    chain(cast.district)
    request = actions.do_request_resync(
        actions.check_resync(
            cast.district, None, ["District"], False, user=cast.stella, level=ResyncRequest.Level.STATE
        )
    )
    perform_queued(queue)
    client.force_login(cast.stella)
    assert client.get("/admin/resync/district/state-tool/state/").json() == {
        "districts": [
            {"district": cast.district.pk, "request": request.pk, "status": "finished", "outcome": "green"}
        ]
    }
    client.force_login(cast.alice)
    assert client.get("/admin/resync/district/state-tool/state/").status_code == 404


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_keeps_a_state_requests_step_from_a_state_user_demoted_to_one_district(cast):
    from django.contrib.auth.models import Group
    from guardian.shortcuts import assign_perm

    from resync import groups, rights

    def demote():
        assign_perm(rights.DISTRICT, cast.stella, cast.district)  # what she keeps: district A's right
        cast.stella.groups.remove(Group.objects.get(name=groups.STATE_ADMINS))

    (stella,) = await connected(cast.stella)
    await sync_to_async(demote)()
    # Queued on her channel before her socket left the state group: a state request's step
    # of district A, which a district user of A must never see.
    await get_channel_layer().group_send(events.STATE_GROUP, step_of(cast.district) | {"object": "School"})
    await alert(cast.stella)
    got = [await stella.receive_json_from(timeout=5) for _ in range(2)]
    assert sorted(m["type"] for m in got) == ["alert.new", "resync"]  # the page is told to catch up
    assert set(get_channel_layer().groups) == {
        events.user_group(cast.stella.pk),
        events.district_group(cast.district.pk),
    }
    # From now on she hears district A's own pushes.
    assert (await next_after_push(stella, cast.stella, cast.district))["type"] == "step.status"
    await stella.disconnect()
    assert get_channel_layer().groups == {}
