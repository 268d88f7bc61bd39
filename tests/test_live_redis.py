"""The live websocket against the real channels-redis layer on the real Redis server
(REDIS_URL, or the embedded redis-server): what the in-memory layer cannot show."""

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from channels_redis.core import RedisChannelLayer

from alerts import events
from alerts.consumers import LiveConsumer

from .conftest import BOTH

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
    alice = connect_as(cast.admin_a)
    assert (await alice.connect())[0]
    assert (await alice.receive_json_from())["type"] == "alert.count"
    assert await alice.receive_nothing(timeout=RedisChannelLayer.brpop_timeout + 2)
    step = {"type": "step.status", "district": cast.a.pk, "object": "Enrollment", "colour": "gray"}
    await layer.group_send(events.district_group(cast.a.pk), step)
    assert (await alice.receive_json_from(timeout=5))["object"] == "Enrollment"
    await alice.disconnect()
    assert await group_members(layer, events.district_group(cast.a.pk)) == 0
