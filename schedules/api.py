"""/api/v1/schedules/: list, read, create, change (PATCH), delete, pause and resume.

Rights as in the admin (schedules.actions): the list and each row are what the user
may see (404 for another's); a change is checked by check_schedule, as a new one.
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core import timefmt
from core.api import Endpoint, errors, refusals_answered
from core.errors import ResyncError
from resync import rights
from resync.models import State

from . import actions
from .models import Schedule


class ScheduleSerializer(serializers.ModelSerializer):
    district = serializers.CharField(source="district.code", default=None, read_only=True)
    state = serializers.CharField(source="state.code", default=None, read_only=True)
    objects = serializers.JSONField(source="objects_asked", read_only=True)
    next_run = serializers.SerializerMethodField(help_text="The next run in the schedule's own zone.")
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = Schedule
        fields = [
            "id", "name", "district", "state", "objects", "check_dependencies", "level", "cron",
            "time_zone", "window_start", "window_end", "missed", "paused", "next_run_at", "next_run",
            "last_run_at", "last_message", "created_by", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_next_run(self, obj: Schedule) -> str:
        return timefmt.when(obj.next_run_at, obj.time_zone)


class ScheduleDetailSerializer(ScheduleSerializer):
    """One schedule, with what it sent: its history (in the list, a query per row)."""

    requests = serializers.SerializerMethodField(
        help_text="Ids of the latest 50 requests it sent, newest first."
    )

    class Meta(ScheduleSerializer.Meta):
        fields = [*ScheduleSerializer.Meta.fields, "requests"]
        read_only_fields = fields

    def get_requests(self, obj: Schedule) -> list[int]:
        return list(obj.requests.values_list("pk", flat=True)[:50])


class ScheduleBody(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    district = serializers.CharField(max_length=16, required=False, help_text="One district's code…")
    state = serializers.CharField(max_length=8, required=False, help_text="…or a state's: all its districts.")
    objects = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    all = serializers.BooleanField(default=False, help_text="A full resync.")
    check_dependencies = serializers.BooleanField(default=False)
    cron = serializers.CharField(max_length=100)
    time_zone = serializers.CharField(max_length=64)
    window_start = serializers.TimeField(required=False, allow_null=True)
    window_end = serializers.TimeField(required=False, allow_null=True)
    missed = serializers.ChoiceField(choices=Schedule.Missed.choices, default=Schedule.Missed.RUN_ONCE)

    def validate(self, data: dict) -> dict:
        if self.partial and "all" not in self.initial_data and "objects" not in self.initial_data:
            return data  # a change that leaves the objects as they are
        if data.get("all") and data.get("objects"):
            raise serializers.ValidationError({"objects": ["Give objects or all=true, not both."]})
        data["objects"] = None if data.get("all") else data.get("objects", [])
        return data


def apply(schedule: Schedule, user, b: dict) -> None:
    """Copy a valid body onto `schedule`; a district or state the user may not name is
    refused as one that does not exist."""
    if "district" in b or "state" in b:
        schedule.district = schedule.state = None
        if b.get("district"):
            schedule.district = rights.district_named(user, b["district"])
            if schedule.district is None:
                raise ResyncError(f"No district {b['district']} among yours.", "district")
        if b.get("state"):
            schedule.state = State.objects.filter(code=b["state"]).first()
            if schedule.state is None:
                raise ResyncError(f"No state {b['state']}.", "state")
    for field in ("name", "check_dependencies", "cron", "time_zone", "window_start", "window_end", "missed"):
        if field in b:
            setattr(schedule, field, b[field])
    if "objects" in b:
        schedule.objects_asked = b["objects"]


@extend_schema_view(
    list=extend_schema(
        summary="Schedules you may see, soonest first",
        responses={200: ScheduleSerializer, **errors(400, 404)},
    ),
    retrieve=extend_schema(summary="One schedule", responses={200: ScheduleDetailSerializer, **errors(404)}),
    destroy=extend_schema(summary="Delete a schedule", responses={204: None, **errors(403, 404)}),
)
class ScheduleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, Endpoint):
    queryset = Schedule.objects.none()  # the model, for the schema; rows come from get_queryset
    serializer_class = ScheduleSerializer
    detail_serializer_class = ScheduleDetailSerializer

    def get_queryset(self) -> QuerySet[Schedule]:
        return actions.visible(self.request.user)

    @extend_schema(
        summary="Schedule a resync",
        description="State administrators schedule any district or a whole state; a district user "
        "their own district's, what they could send by hand, when SCHEDULES_FOR_DISTRICTS allows.",
        request=ScheduleBody,
        responses={201: ScheduleDetailSerializer, **errors(400, 403)},
    )
    def create(self, request: Request) -> Response:
        b = self.valid(ScheduleBody, request.data)
        with refusals_answered():
            schedule = Schedule()
            apply(schedule, request.user, b)
            actions.do_save(actions.check_schedule(schedule, request.user), request.user)
        return self.created(ScheduleDetailSerializer(self.get_queryset().get(pk=schedule.pk)))

    @extend_schema(
        summary="Change a schedule",
        request=ScheduleBody,
        responses={200: ScheduleDetailSerializer, **errors(400, 403, 404)},
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        schedule = self.get_object()
        given = ScheduleBody(data=request.data, partial=True)
        given.is_valid(raise_exception=True)
        b = dict(given.validated_data)
        with refusals_answered():
            actions.check_manage(request.user, schedule)
            apply(schedule, request.user, b)
            actions.do_save(actions.check_schedule(schedule, request.user), request.user)
        return Response(ScheduleDetailSerializer(self.get_queryset().get(pk=schedule.pk)).data)

    def destroy(self, request: Request, pk: str) -> Response:
        schedule = self.get_object()
        with refusals_answered():
            actions.check_manage(request.user, schedule)
        schedule.delete()
        return Response(status=204)

    def _pause(self, request: Request, paused: bool) -> Response:
        schedule = self.get_object()
        with refusals_answered():
            actions.check_manage(request.user, schedule)
        actions.do_pause(schedule, paused)
        return Response(ScheduleDetailSerializer(schedule).data)

    @extend_schema(
        summary="Pause a schedule",
        request=None,
        responses={200: ScheduleDetailSerializer, **errors(400, 403, 404)},
    )
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        return self._pause(request, True)

    @extend_schema(
        summary="Resume a schedule, from its next occurrence",
        request=None,
        responses={200: ScheduleDetailSerializer, **errors(400, 403, 404)},
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        return self._pause(request, False)
