"""The one websocket an admin page opens: live step status and Process Alerts."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from importlib import import_module
from types import SimpleNamespace

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib import auth

from alerts.models import ProcessAlert
from core import events
from core.errors import log_refusal
from resync import rights
from verification.rights import may_view_verification

log = logging.getLogger(__name__)

# The close code of a socket without (or no longer with) a live session and active user.
ENDED = 4401


@dataclass
class Hearing:
    """What a socket may hear now: its groups, and the rights that filter what reaches it."""

    groups: list[str]
    state: bool
    districts: frozenset[int]
    verifies: bool


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """Joins only the groups the user has rights to: their own alerts, and the
    districts they may see (a state user joins the state group instead, which
    carries every district's events, state requests included); with Verification
    Summary R, the verification groups of the same districts (or the state's).

    Rights are not fixed at connect: the socket re-checks its user and session when
    told their rights changed (live/signals.py), closes when its session logs out,
    and re-checks every LIVE_RECHECK_SECONDS anyway (what a signal cannot see: a
    session that expired, a permission written with bulk SQL). Each re-check leaves
    the groups the user may no longer hear and joins the rest again, which also
    brings back memberships Redis lost (FLUSHDB, a restart, channels-redis' expiry)."""

    async def connect(self):
        user = self.scope.get("user")
        self.joined: list[str] = []
        self.ticker = None
        if user is None or not user.is_authenticated:
            self._refuse(None, "open the live socket without a session")
            await self.close(code=ENDED)
            return
        self.user = user
        session = self.scope.get("session")
        self.session_key = session.session_key if session is not None else None
        self.checking = asyncio.Lock()
        self.fence_sent = self.fence_passed = 0
        access = await self._access(count_unread=True)
        if access is None:
            self._refuse(user, "open the live socket with an ended session or inactive user")
            await self.close(code=ENDED)
            return
        self.hearing, unread = access
        await self._join(self.hearing.groups)
        await self.accept()
        await self.send_json({"type": "alert.count", "unread": unread})
        self.ticker = asyncio.ensure_future(self._tick(settings.LIVE_RECHECK_SECONDS))

    async def disconnect(self, code):
        if self.ticker is not None:
            self.ticker.cancel()
        await self._leave(self.joined)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        # The browser only listens. A frame it should not send gets an answer naming
        # the problem, never an exception: that would close the socket with 1011.
        if text_data is None:
            await self.send_json(
                {"type": "error", "error": "This socket takes JSON text frames, not binary."}
            )
            return
        try:
            await self.decode_json(text_data)
        except ValueError:
            await self.send_json({"type": "error", "error": "This socket takes JSON text frames: not JSON."})

    async def step_status(self, event):
        if self._hears(event):
            await self.send_json(event)

    async def steps_status(self, event):
        # Several steps of one request in one push (runner.lifecycle.push_steps): the
        # browser gets each as the step.status it would have had alone.
        if self._hears(event):
            for step in event["steps"]:
                await self.send_json(step)

    async def request_finished(self, event):
        if self._hears(event):
            await self.send_json(event)

    async def alert_new(self, event):
        await self.send_json(event)

    async def verification_progress(self, event):
        if self.hearing.verifies and self._hears(event):
            await self.send_json(event)

    def _hears(self, event) -> bool:
        # The groups decide, but a push already queued on this socket's channel when its
        # right ended must not slip through either (it is processed after the re-check).
        # A push does not say which group brought it: until the fence sent when groups
        # were left comes back, hold every group push (a state request's step of a district
        # the user still has must not reach a user just demoted from the state group).
        if self.fence_passed < self.fence_sent:
            return False
        return self.hearing.state or event.get("district") in self.hearing.districts

    async def live_fence(self, event):
        # Everything queued before the groups were left has now gone by (the channel is in
        # order). The page may have missed pushes it still may hear: it fetches them.
        self.fence_passed = max(self.fence_passed, event["fence"])
        if self.fence_passed == self.fence_sent:
            await self.send_json({"type": "resync"})

    async def rights_changed(self, event):
        await self._recheck()

    async def session_ended(self, event):
        # Sent by the logout itself, before Django flushes the session: a re-check
        # could still find it valid, so close without asking.
        await self._end("kept listening after its session logged out")

    async def _tick(self, every: float) -> None:
        while self.ticker is not None:
            await asyncio.sleep(every)
            try:
                await self._recheck()
            except Exception:  # one failed re-check (Redis or the database away) must not end them
                log.exception("live socket re-check failed for %s", self.user.username)

    async def _recheck(self) -> None:
        async with self.checking:
            if self.ticker is None:
                return  # ended already
            access = await self._access(count_unread=False)
            if access is None:
                await self._end("kept listening after its session or user ended")
                return
            self.hearing, _unread = access
            groups = self.hearing.groups
            gone = [g for g in self.joined if g not in groups]
            if gone:
                self._refuse(self.user, "hear " + ", ".join(gone) + " after the right ended")
                await self._leave(gone)
                self.fence_sent += 1
                await self.channel_layer.send(
                    self.channel_name, {"type": "live.fence", "fence": self.fence_sent}
                )
            # Join every group again, even those kept: Redis may have lost them.
            await self._join(groups)

    async def _end(self, what: str) -> None:
        ticker, self.ticker = self.ticker, None
        if ticker is None:
            return
        if ticker is not asyncio.current_task():  # the tick itself ends when it sees None
            ticker.cancel()
        self._refuse(self.user, what)
        # Leave first: no push may reach a socket whose rights ended, even before the
        # server confirms the close.
        await self._leave(self.joined)
        await self.close(code=ENDED)

    async def _join(self, groups: list[str]) -> None:
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        self.joined = list(groups)

    async def _leave(self, groups: list[str]) -> None:
        for group in groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.joined = [g for g in self.joined if g not in groups]

    @staticmethod
    def _refuse(user, what: str) -> None:
        log_refusal(user, "websocket", what)

    @database_sync_to_async
    def _access(self, count_unread: bool) -> tuple[Hearing, int] | None:
        """What the user may hear now (and, when asked, their unread count); None when
        the socket must close (its session ended or expired, its user is gone or inactive)."""
        user = self._current_user()
        if user is None:
            return None
        hearing = self._hearing(user)
        if self.session_key:
            hearing.groups.append(events.session_group(self.session_key))
        unread = ProcessAlert.objects.filter(user=user).unread().count() if count_unread else 0
        return hearing, unread

    def _current_user(self):
        """The socket's user as the database has it now (never the connect-time object,
        whose permission cache is stale), or None."""
        if self.session_key:
            # What an HTTP request with this cookie would get: nobody once the session
            # is flushed, expired, or its password hash no longer matches.
            store = import_module(settings.SESSION_ENGINE).SessionStore(self.session_key)
            user = auth.get_user(SimpleNamespace(session=store))
            if user.pk != self.user.pk:
                return None
        else:
            # A scope built without a session (tests, an embedding ASGI app): the user row.
            user = auth.get_user_model().objects.filter(pk=self.user.pk).first()
        return user if rights.active(user) else None

    @staticmethod
    def _hearing(user) -> Hearing:
        groups = [events.user_group(user.pk)]
        verifies = may_view_verification(user)
        state = rights.is_state(user)
        pks: set[int] = set()
        if state:
            groups.append(events.STATE_GROUP)
            if verifies:
                groups.append(events.VERIFICATION_STATE_GROUP)
        else:
            pks = set(rights.districts(user).values_list("pk", flat=True))
            groups += [events.district_group(pk) for pk in sorted(pks)]
            if verifies:
                groups += [events.verification_group(pk) for pk in sorted(pks)]
        return Hearing(groups, state, frozenset(pks), verifies)
