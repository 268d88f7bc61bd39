"""The live websocket against the real channels-redis layer on the real Redis server
(REDIS_URL, or the embedded redis-server): what the in-memory layer cannot show."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from django.test import override_settings

from alerts.models import ProcessAlert
from core import events
from live.consumers import LiveConsumer
from statesync.asgi import application

from .conftest import BOTH

# Transactional: the consumers read the test's rows through database_sync_to_async, on another thread.
pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)


def connect_as(user):
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    return communicator


@pytest.fixture
async def layer():
    """The configured layer (the real RedisChannelLayer), its groups flushed before and after."""
    layer = get_channel_layer()
    assert isinstance(layer, RedisChannelLayer)
    await layer.flush()
    yield layer
    await layer.flush()


async def group_members(layer, group: str) -> int:
    connection = layer.connection(layer.consistent_hash(group))
    return await connection.zcard(layer._group_key(group))


async def test_it_keeps_an_idle_socket_open_past_the_layers_blocking_read(cast, layer):
    # channels-redis blocks BZPOPMIN for brpop_timeout seconds; a socket whose read
    # timeout is not longer than that died with 1011 right there, idle.
    alice = connect_as(cast.alice)
    assert (await alice.connect())[0]
    assert (await alice.receive_json_from())["type"] == "alert.count"
    assert await alice.receive_nothing(timeout=RedisChannelLayer.brpop_timeout + 2)
    step = {"type": "step.status", "district": cast.district.pk, "object": "Enrollment", "colour": "gray"}
    await layer.group_send(events.district_group(cast.district.pk), step)
    assert (await alice.receive_json_from(timeout=5))["object"] == "Enrollment"
    await alice.disconnect()
    assert await group_members(layer, events.district_group(cast.district.pk)) == 0


async def until(condition, what: str) -> None:
    """Wait for `condition()` (an async predicate; a re-check runs on its own timer), failing after 10 s."""
    for _ in range(500):
        if await condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


async def opened(user):
    socket = connect_as(user)
    assert (await socket.connect())[0]
    assert (await socket.receive_json_from())["type"] == "alert.count"
    return socket


def step_of(district) -> dict:
    return {"type": "step.status", "district": district.pk, "object": "Enrollment", "colour": "gray"}


@override_settings(LIVE_RECHECK_SECONDS=0.1)
async def test_it_hears_again_after_redis_lost_its_data(cast, layer):
    alice = await opened(cast.alice)
    group = events.district_group(cast.district.pk)
    assert await group_members(layer, group) == 1
    # What a restart without persistence does to the layer: every group membership gone.
    await layer.connection(layer.consistent_hash(group)).flushdb()
    assert await group_members(layer, group) == 0
    await until(lambda: group_members_is(layer, group, 1), "the socket joined its district again")
    await layer.group_send(group, step_of(cast.district))
    assert (await alice.receive_json_from(timeout=5))["object"] == "Enrollment"
    await alice.disconnect()
    assert await group_members(layer, group) == 0


async def group_members_is(layer, group: str, count: int) -> bool:
    return await group_members(layer, group) == count


async def test_it_stops_a_revoked_districts_pushes_on_the_real_layer(cast, layer):
    from guardian.shortcuts import remove_perm

    from resync import rights

    alice = await opened(cast.alice)
    await sync_to_async(remove_perm)(rights.DISTRICT, cast.alice, cast.district)
    await layer.group_send(events.district_group(cast.district.pk), step_of(cast.district))
    await sync_to_async(ProcessAlert.objects.notify)([cast.alice], name="marker", category="y", message="m")
    got = await alice.receive_json_from(timeout=5)
    if got["type"] == "resync":  # the socket tells its page to catch up, whenever it left
        got = await alice.receive_json_from(timeout=5)
    assert (got["type"], got["name"]) == ("alert.new", "marker")  # the step, sent first, never came
    assert await group_members(layer, events.district_group(cast.district.pk)) == 0
    await alice.disconnect()


async def test_it_closes_a_logged_out_sessions_socket_on_the_real_layer(cast, layer, client):
    def login() -> bytes:
        client.force_login(cast.alice)
        return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()

    cookie = await sync_to_async(login)()
    socket = WebsocketCommunicator(
        application, "/ws/live/", headers=[(b"origin", b"http://localhost"), (b"cookie", cookie)]
    )
    assert (await socket.connect())[0]
    await socket.receive_json_from()
    assert (await sync_to_async(client.post)("/admin/logout/")).status_code == 200
    output = await socket.receive_output(timeout=5)
    assert (output["type"], output["code"]) == ("websocket.close", 4401)
    assert await group_members(layer, events.district_group(cast.district.pk)) == 0
    await socket.disconnect()


async def test_it_pushes_a_commits_alerts_to_each_inbox_in_one_trip_on_the_real_layer(cast, layer):
    """notify_all sends every alert of its commit through events.send_all (one trip to the
    layer): each user's socket still hears its own alert, and nobody else's."""
    alice, bob = connect_as(cast.alice), connect_as(cast.bob)
    for socket in (alice, bob):
        assert (await socket.connect())[0]
        assert (await socket.receive_json_from())["type"] == "alert.count"

    def notify() -> None:
        ProcessAlert.objects.notify_all(
            [
                ProcessAlert(
                    user=user, name=name, category=ProcessAlert.VERTICAL_INTEROPERABILITY, message=name
                )
                for user, name in (
                    (cast.alice, "for alice"),
                    (cast.bob, "for bob"),
                    (cast.alice, "alice again"),
                )
            ]
        )

    await sync_to_async(notify)()
    heard = [await alice.receive_json_from(timeout=5), await alice.receive_json_from(timeout=5)]
    assert [(m["type"], m["name"], m["unread"]) for m in heard] == [
        ("alert.new", "for alice", 2),
        ("alert.new", "alice again", 2),
    ]
    got = await bob.receive_json_from(timeout=5)
    assert (got["name"], got["unread"]) == ("for bob", 1)
    assert await alice.receive_nothing(timeout=0.5) and await bob.receive_nothing(timeout=0.2)
    for socket in (alice, bob):
        await socket.disconnect()
    assert await group_members(layer, events.user_group(cast.alice.pk)) == 0
