"""The state's copy over REST: `state-records/` (a keyset-paged list) and its export.

State users (`resync.rights.is_state`: state resync R) read every district's
records; anyone else gets the 403 a state-only door gives (tool.api's state
requests), as the article's district users have no state access. The records
live on the `state` database alias: statesync.routers sends every StateRecord
query there.
"""

from __future__ import annotations

import json

from django.db.models import QuerySet
from django.http import Http404, StreamingHttpResponse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, renderers, serializers
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request

from core.api import Endpoint, Holds, IdFilter, MomentFilter, StrictPageSize, errors
from core.parsers import is_whole_number
from resync import rights
from resync.models import StateRecord, SyncObject

from . import export

REFUSAL = "Only state users (state resync R) read the state's copy."


class StateRecordSerializer(serializers.ModelSerializer):
    district = serializers.CharField(source="district_code", help_text="District code.")
    object = serializers.CharField(source="sync_object", help_text="Sync object name.")
    parents = serializers.JSONField(source="parent_ids", help_text="{parent object: parent record id}")

    class Meta:
        model = StateRecord
        fields = ["district", "object", "record_id", "school_year", "parents", "payload", "step", "synced_at"]


class StateRecordFilter(filters.FilterSet):
    district = filters.CharFilter(field_name="district_code", help_text="District code.")
    object = filters.CharFilter(
        field_name="sync_object", help_text="Sync object name, as the catalog spells it."
    )
    school_year = IdFilter(help_text="Ending year (2027 is 2026-27).")
    changed_since = MomentFilter(
        field_name="synced_at",
        lookup_expr="gt",
        help_text="Only records the state wrote after this ISO 8601 date and time.",
    )

    class Meta:
        model = StateRecord
        fields = ["district", "object", "school_year", "changed_since"]


class KeysetPage(StrictPageSize, CursorPagination):
    """Keyset pages over the primary key.

    Why `id`: it is unique, indexed (the primary key) and never changes, so a walk
    sees each row once whatever is written meanwhile; DRF's cursor on a key that
    repeats (synced_at: one step stamps all its rows alike) falls back to offsets
    capped at 1,000, which would stop a walk through a large step. To pull only what
    changed, a client passes as `changed_since` the time it started its previous
    pull, less a margin for steps still committing then (a row is stamped before its
    step commits); a row written during a walk is then seen now or at the next pull.
    """

    ordering = "id"
    page_size = 100

    def decode_cursor(self, request: Request):
        bad = ValidationError({"cursor": ["Not a cursor this API gave: follow the next or previous link."]})
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            # A cursor is input, not a place: a bad one is a 400 naming it, not a 404.
            raise bad from None
        # Decoded, the position is still the client's text: an id, else the query fails (a 500).
        if cursor is not None and cursor.position is not None and not is_whole_number(cursor.position):
            raise bad
        return cursor


class CSVRenderer(renderers.BaseRenderer):
    """Lets `?format=csv` and `Accept: text/csv` through negotiation; the export streams
    its own body, so this only ever renders an error's detail."""

    media_type = "text/csv"
    format = "csv"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return str(data.get("detail", data) if isinstance(data, dict) else data).encode()


class NDJSONRenderer(renderers.BaseRenderer):
    """Lets `?format=ndjson` through; an error's answer is one JSON line."""

    media_type = "application/x-ndjson"
    format = "ndjson"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return (json.dumps(data) + "\n").encode()


class ExportParams(serializers.Serializer):
    object = serializers.CharField(max_length=64, help_text="Sync object name (any case).")
    district = serializers.CharField(
        max_length=16, required=False, help_text="District code; leave out for every district."
    )


@extend_schema_view(
    list=extend_schema(
        summary="The state's records (state users only)",
        description="Keyset pages in id order: follow `next` to walk every record once. For only what "
        "changed, give `changed_since` the time your previous pull started, less a margin.",
        responses={200: StateRecordSerializer, **errors(400, 403)},
    ),
)
class StateRecordViewSet(mixins.ListModelMixin, Endpoint):
    permission_classes = [permissions.IsAuthenticated, Holds]
    required_perm = rights.STATE_VIEW
    refusal = REFUSAL
    serializer_class = StateRecordSerializer
    filterset_class = StateRecordFilter
    pagination_class = KeysetPage

    def get_queryset(self) -> QuerySet[StateRecord]:
        return StateRecord.objects.all()

    def perform_content_negotiation(self, request: Request, force: bool = False):
        try:
            return super().perform_content_negotiation(request, force)
        except Http404:
            # DRF answers a `format` it has no renderer for with a bare 404: it is input, name it.
            raise ValidationError({"format": ["Expected csv or ndjson (export), or json."]}) from None

    @extend_schema(
        summary="One object's state records as CSV or NDJSON (state users only)",
        description="Streamed in flat memory, every district or one. CSV: district, record_id, "
        "school_year, one `parent:<Object>` column per parent, the object's schema fields in order, "
        "and `extra` (JSON) for payload keys the schema does not name. NDJSON (`format=ndjson`): one "
        "record a line, as the list shows it.",
        parameters=[
            ExportParams,
            OpenApiParameter("format", enum=["csv", "ndjson"], description="csv unless ndjson is asked for."),
        ],
        filters=False,
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV with a header line."),
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR, description="One JSON record a line."
            ),
            **errors(400, 403),
        },
    )
    @action(
        detail=False,
        methods=["get"],
        pagination_class=None,
        filter_backends=[],
        renderer_classes=[renderers.JSONRenderer, CSVRenderer, NDJSONRenderer],
    )
    def export(self, request: Request) -> StreamingHttpResponse:
        if request.accepted_renderer.format == "json" and "format" in request.query_params:
            raise ValidationError({"format": ["Expected csv or ndjson."]})
        q = self.valid(ExportParams, request.query_params)
        obj = SyncObject.objects.filter(name__iexact=q["object"]).first()
        if obj is None:
            raise ValidationError({"object": [f"No sync object named {q['object']!r} in the catalog."]})
        fmt = "ndjson" if request.accepted_renderer.format == "ndjson" else "csv"
        return export.response(request._request, obj, q.get("district"), fmt)
