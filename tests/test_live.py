"""The live websocket: session-authenticated, origin-checked, and only the groups a user has rights to."""

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import override_settings

from alerts import events
from alerts.consumers import LiveConsumer
from alerts.models import ProcessAlert
from statesync.asgi import application

from .conftest import BOTH

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)
IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def connect_as(user):
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    return communicator


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_sends_a_district_user_their_districts_steps_and_their_alerts(cast):
    alice = connect_as(cast.admin_a)
    charlie = connect_as(cast.admin_b)
    assert (await alice.connect())[0] and (await charlie.connect())[0]
    assert await alice.receive_json_from() == {"type": "alert.count", "unread": 0}
    await charlie.receive_json_from()

    layer = get_channel_layer()
    step = {"type": "step.status", "district": cast.a.pk, "object": "Enrollment", "colour": "gray"}
    await layer.group_send(events.district_group(cast.a.pk), step)
    assert (await alice.receive_json_from())["object"] == "Enrollment"
    await sync_to_async(ProcessAlert.objects.notify)([cast.admin_a], name="x", category="y", message="m")
    got = await alice.receive_json_from()
    assert (got["type"], got["unread"]) == ("alert.new", 1)
    assert await charlie.receive_nothing()  # another district's user hears nothing

    await alice.disconnect()
    await charlie.disconnect()
    assert layer.groups == {}  # every group left on disconnect


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_it_puts_a_state_user_in_the_state_group_only(cast):
    stella = connect_as(cast.state)
    assert (await stella.connect())[0]
    await stella.receive_json_from()
    layer = get_channel_layer()
    assert set(layer.groups) == {events.STATE_GROUP, events.user_group(cast.state.pk)}
    await stella.disconnect()
    assert layer.groups == {}


async def test_it_refuses_an_anonymous_connection():
    communicator = WebsocketCommunicator(application, "/ws/live/", headers=[(b"origin", b"http://localhost")])
    connected, code = await communicator.connect()
    assert not connected and code == 4401


async def test_it_refuses_a_foreign_origin(cast):
    communicator = WebsocketCommunicator(
        application, "/ws/live/", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected
    assert "evil.example" not in settings.ALLOWED_HOSTS
