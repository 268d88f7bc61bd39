"""The REST API for a user's own Process Alerts: list them, mark them read."""

from __future__ import annotations

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from alerts.models import ProcessAlert
from core.api import Endpoint, YesNoFilter, errors
from resync import rights

from . import links


class AlertSerializer(serializers.ModelSerializer):
    district = serializers.CharField(source="district.code", allow_null=True)
    request = serializers.SerializerMethodField(
        help_text="The resync request it is about; null when it is a state request you may not see."
    )
    link = serializers.SerializerMethodField(
        help_text="The page it is about; empty when you may not open that page (any more)."
    )

    class Meta:
        model = ProcessAlert
        fields = [
            "id",
            "name",
            "category",
            "process",
            "message",
            "link",
            "district",
            "request",
            "created_at",
            "read_at",
        ]

    def get_link(self, alert: ProcessAlert) -> str:
        return self.context["shown"](alert.link) if alert.link else ""

    def get_request(self, alert: ProcessAlert) -> int | None:
        # A district is told the state asked for a resync, never which request it is.
        if alert.request is None:
            return None
        return alert.request_id if rights.level_shown(alert.request.level, self.context["state"]) else None


class AlertFilter(filters.FilterSet):
    unread = YesNoFilter(field_name="read_at", lookup_expr="isnull", help_text="Only unread ones.")

    class Meta:
        model = ProcessAlert
        fields = ["unread"]


Marked = inline_serializer("Marked", {"marked": serializers.IntegerField()})


@extend_schema_view(
    list=extend_schema(
        summary="Your Process Alerts, newest first", responses={200: AlertSerializer, **errors(400, 404)}
    ),
)
class AlertViewSet(mixins.ListModelMixin, Endpoint):
    queryset = ProcessAlert.objects.none()  # the model, for the schema; rows come from get_queryset
    serializer_class = AlertSerializer
    filterset_class = AlertFilter

    def get_queryset(self) -> QuerySet[ProcessAlert]:
        # Anyone's inbox is theirs alone: another user's alert is a 404.
        return ProcessAlert.objects.filter(user=self.request.user).select_related("district", "request")

    def get_serializer_context(self) -> dict:
        return {
            **super().get_serializer_context(),
            "state": rights.is_state(self.request.user),
            # Each link checked once per response, against the page's own rights (alerts.links).
            "shown": links.opener(self.request._request),
        }

    @extend_schema(
        summary="Mark one alert read",
        operation_id="v1_alerts_read",
        request=None,
        responses={200: AlertSerializer, **errors(404)},
    )
    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk: str) -> Response:
        alert = self.get_object()
        ProcessAlert.objects.filter(pk=alert.pk).mark_read()
        alert.refresh_from_db(fields=["read_at"])
        return Response(self.get_serializer(alert).data)

    @extend_schema(
        summary="Mark one alert unread again",
        operation_id="v1_alerts_unread",
        request=None,
        responses={200: AlertSerializer, **errors(404)},
    )
    @action(detail=True, methods=["post"])
    def unread(self, request: Request, pk: str) -> Response:
        alert = self.get_object()
        ProcessAlert.objects.filter(pk=alert.pk).mark_unread()
        alert.refresh_from_db(fields=["read_at"])
        return Response(self.get_serializer(alert).data)

    @extend_schema(
        summary="Mark all your alerts read",
        operation_id="v1_alerts_read_all",
        request=None,
        responses={200: Marked, **errors()},
    )
    @action(detail=False, methods=["post"], url_path="read")
    def read_all(self, request: Request) -> Response:
        return Response({"marked": self.get_queryset().mark_read()})
