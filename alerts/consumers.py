"""The one websocket an admin page opens: live step status and Process Alerts."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from alerts import events


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """Joins only the groups the user has rights to: their own alerts, and the
    districts they may see (a state user joins the state group instead, which
    carries every district's events, state requests included); with Verification
    Summary R, the verification groups of the same districts (or the state's)."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.joined, unread = await self._groups_and_unread(user)
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "alert.count", "unread": unread})

    async def disconnect(self, code):
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        pass  # the browser only listens

    async def step_status(self, event):
        await self.send_json(event)

    async def request_finished(self, event):
        await self.send_json(event)

    async def alert_new(self, event):
        await self.send_json(event)

    async def verification_progress(self, event):
        await self.send_json(event)

    @database_sync_to_async
    def _groups_and_unread(self, user) -> tuple[list[str], int]:
        from alerts.models import ProcessAlert
        from resync import rights

        groups = [events.user_group(user.pk)]
        verifies = rights.may_view_verification(user)
        if rights.is_state(user):
            groups.append(events.STATE_GROUP)
            if verifies:
                groups.append(events.VERIFICATION_STATE_GROUP)
        else:
            pks = list(rights.districts(user).values_list("pk", flat=True))
            groups += [events.district_group(pk) for pk in pks]
            if verifies:
                groups += [events.verification_group(pk) for pk in pks]
        return groups, ProcessAlert.objects.filter(user=user).unread().count()
