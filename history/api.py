"""The REST API for where results land: DISBatchHistory and the Error Log.

Both need their feature's view right (history view, Error Log R) and show only
the rows `rights.visible` lets the user see: their districts', and for a
district user never a state request's.
"""

from __future__ import annotations

from functools import cache

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, renderers, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import Endpoint, Holds, IdFilter, MomentFilter, errors
from history.models import DISBatchHistory, ErrorLog, label_fields
from history.summary import summarise
from resync import rights
from resync.rules import REASON_HELP, Reason


class StepSerializer(serializers.ModelSerializer):
    """One step with its counts as they are now: a request's steps, and each history row."""

    object = serializers.CharField(source="sync_object.name")
    colour = serializers.CharField(help_text="gray while running, then green, yellow or red.")
    sent = serializers.IntegerField(help_text="Records that reached the state.")

    class Meta:
        model = DISBatchHistory
        fields = [
            "id",
            "object",
            "layer",
            "status",
            "colour",
            "processed",
            "errors",
            "sent",
            "started_at",
            "ended_at",
            "attempts",
            "message",
        ]


class HistorySerializer(StepSerializer):
    request = serializers.IntegerField(source="request_id")
    district = serializers.CharField(source="district.code")

    class Meta(StepSerializer.Meta):
        fields = ["id", "request", "district", "school_year", *StepSerializer.Meta.fields[1:]]


class HistoryFilter(filters.FilterSet):
    # Plain numbers and codes, not choices of rows: a filter must not tell an
    # existing request from an absent one.
    district = filters.CharFilter(field_name="district__code", help_text="District code.")
    object = filters.CharFilter(field_name="sync_object__name", help_text="Sync object name.")
    request = IdFilter(field_name="request_id")
    school_year = IdFilter()
    started_after = MomentFilter(field_name="started_at", lookup_expr="gte")
    started_before = MomentFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = DISBatchHistory
        fields = ["district", "object", "request", "school_year", "status"]


@extend_schema_view(
    list=extend_schema(
        summary="DISBatchHistory: every step of every request you may see",
        responses={200: HistorySerializer, **errors(400, 403, 404)},
    ),
    retrieve=extend_schema(summary="One step", responses={200: HistorySerializer, **errors(403, 404)}),
)
class HistoryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, Endpoint):
    permission_classes = [permissions.IsAuthenticated, Holds]
    required_perm = "history.view_disbatchhistory"
    serializer_class = HistorySerializer
    filterset_class = HistoryFilter

    def get_queryset(self) -> QuerySet[DISBatchHistory]:
        return DISBatchHistory.objects.visible_to(self.request.user).select_related("district", "sync_object")


class ErrorLogSerializer(serializers.ModelSerializer):
    district = serializers.CharField(source="district.code")
    object = serializers.CharField(source="sync_object.name")
    request = serializers.IntegerField(source="step.request_id")
    record_label = serializers.SerializerMethodField(
        help_text="The record as a person knows it: its schema's label fields (a name, a state id); "
        "empty without them or once the record is gone."
    )
    reason_help = serializers.SerializerMethodField(help_text="What to fix in the SIS for this reason.")

    class Meta:
        model = ErrorLog
        fields = [
            "id",
            "created_at",
            "district",
            "object",
            "record_id",
            "record_label",
            "reason",
            "reason_help",
            "message",
            "request",
            "step",
        ]

    def get_reason_help(self, row: ErrorLog) -> str:
        return REASON_HELP.get(row.reason, "")

    def get_record_label(self, row: ErrorLog) -> str:
        fields = self.context["labels"]().get(row.sync_object_id, ())
        return ErrorLog.label(getattr(row, "record_payload", None), fields)


class ExampleSerializer(serializers.Serializer):
    record_id = serializers.IntegerField()
    message = serializers.CharField()


class CauseSerializer(serializers.Serializer):
    """One group of the Error Log summary (history.summary.Cause)."""

    district = serializers.CharField(help_text="District code.")
    object = serializers.CharField()
    reason = serializers.CharField()
    label = serializers.CharField(help_text="The reason in words.")
    help = serializers.CharField(help_text="What to fix in the SIS.")
    count = serializers.IntegerField(help_text="This group's errors.")
    blocks = serializers.IntegerField(
        help_text="Errors of child objects (parent_missing) that this object's missing records cause."
    )
    fixes = serializers.IntegerField(help_text="count + blocks: the groups come most fixed first.")
    examples = ExampleSerializer(many=True, help_text="The first rows of the group.")
    caused_by_parent = serializers.BooleanField(help_text="parent_missing: the parent is the cause.")
    parents = serializers.ListField(child=serializers.CharField(), help_text="The parent objects to look at.")
    parents_with_errors = serializers.ListField(
        child=serializers.CharField(),
        help_text="Of those, the ones with errors of their own in the district.",
    )
    parent_rows = serializers.SerializerMethodField(help_text="The parents' own Error Log rows in the API.")

    def get_parent_rows(self, cause) -> list[str]:
        return [f"/api/v1/error-log/?district={cause.district}&object={p}" for p in cause.parents_with_errors]


class ErrorLogFilter(filters.FilterSet):
    district = filters.CharFilter(field_name="district__code", help_text="District code.")
    object = filters.CharFilter(field_name="sync_object__name", help_text="Sync object name.")
    reason = filters.ChoiceFilter(choices=Reason.choices)
    request = IdFilter(field_name="step__request_id")
    step = IdFilter(field_name="step_id")
    date_from = filters.DateFilter(field_name="created_at", lookup_expr="date__gte", help_text="On or after.")
    date_to = filters.DateFilter(field_name="created_at", lookup_expr="date__lte", help_text="On or before.")

    class Meta:
        model = ErrorLog
        fields = ["district", "object", "reason", "request", "step", "date_from", "date_to"]


class CSVRenderer(renderers.BaseRenderer):
    """Lets `Accept: text/csv` through negotiation; the export streams its own body,
    so this only ever renders an error's detail."""

    media_type = "text/csv"
    format = "csv"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return str(data.get("detail", data) if isinstance(data, dict) else data).encode()


@extend_schema_view(
    list=extend_schema(
        summary="The Error Log: records that did not reach the state, with why",
        responses={200: ErrorLogSerializer, **errors(400, 403, 404)},
    ),
)
class ErrorLogViewSet(mixins.ListModelMixin, Endpoint):
    permission_classes = [permissions.IsAuthenticated, Holds]
    required_perm = "history.view_errorlog"
    serializer_class = ErrorLogSerializer
    filterset_class = ErrorLogFilter

    def get_queryset(self) -> QuerySet[ErrorLog]:
        qs = ErrorLog.objects.select_related("district", "sync_object", "step").with_record_payload()
        return rights.visible(self.request.user, qs, level="step__request__level")

    def get_serializer_context(self) -> dict:
        # The schemas' label fields read once per response, whatever its number of rows.
        return {**super().get_serializer_context(), "labels": cache(label_fields)}

    @extend_schema(
        summary="The Error Log by cause",
        description="The rows the same filters select, grouped by district, object and reason, with "
        "counts, the first examples and what to fix; most fixed first (a missing parent's errors hold "
        "back its children's, so the parent comes first). Unpaged: one row per group.",
        responses={200: CauseSerializer(many=True), **errors(400, 403, 404)},
    )
    @action(detail=False, methods=["get"], pagination_class=None)
    def summary(self, request: Request) -> Response:
        rows = self.filter_queryset(self.get_queryset())
        return Response(CauseSerializer(summarise(rows), many=True).data)

    @extend_schema(
        summary="The Error Log as CSV",
        description="Every row the same filters select, unpaged, streamed in flat memory.",
        parameters=[OpenApiParameter("format", exclude=True)],  # the endpoint is the format
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV with a header line."),
            **errors(400, 403, 404),
        },
    )
    @action(detail=False, methods=["get"], renderer_classes=[renderers.JSONRenderer, CSVRenderer])
    def export(self, request: Request) -> StreamingHttpResponse:
        rows = self.filter_queryset(self.get_queryset()).order_by("id")
        response = StreamingHttpResponse(rows.as_csv(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="error-log.csv"'
        return response
