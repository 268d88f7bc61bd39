"""The REST API of the Verification Summary (Selective Sync's is selective.api).

Same rules as the rest of the API (core.api): views parse input, call one
action (which validates and authorises through resync.rights) and answer; a
missing right is 403, anything the user may not know of is 404 (or, in a
body, a 400 that reads the same for "absent" and "not yours").
"""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import (
    Endpoint,
    Holds,
    IdFilter,
    Page,
    WholeNumberField,
    errors,
    refusals_answered,
    refuse_empty,
)
from tool.api import ResyncRequestDetailSerializer, district_named, visible_requests

from . import actions as verify
from .models import DISVerificationDifference, DISVerificationResult, VerificationRun
from .rights import VERIFY_VIEW


class ResultSerializer(serializers.ModelSerializer):
    object = serializers.CharField(source="sync_object.name")
    to_resync = serializers.IntegerField(
        source="differences_count", help_text="only_district + only_state + different."
    )

    class Meta:
        model = DISVerificationResult
        fields = [
            "object",
            "only_district",
            "only_state",
            "different",
            "to_resync",
            "not_allowed",
            "matching",
            "truncated",
        ]


class RunSerializer(serializers.ModelSerializer):
    district = serializers.CharField(source="district.code")
    objects = serializers.ListField(source="sync_objects", child=serializers.CharField())
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True)
    to_resync = serializers.IntegerField(
        source="differing", help_text="Records a resync would change, over every object."
    )
    not_allowed = serializers.IntegerField(
        source="refused", help_text="Records that may not sync: shown apart, not failures."
    )
    resync_request = serializers.IntegerField(
        source="resync_shown",
        allow_null=True,
        help_text="The resync last sent from this run's differences, when it is one you may see.",
    )

    class Meta:
        model = VerificationRun
        fields = [
            "id",
            "district",
            "school_year",
            "level",
            "objects",
            "status",
            "objects_done",
            "records_compared",
            "to_resync",
            "not_allowed",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "message",
            "resync_request",
        ]


class RunDetailSerializer(RunSerializer):
    results = ResultSerializer(many=True, help_text="One per object compared so far, parents first.")

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "results"]


class DifferenceSerializer(serializers.ModelSerializer):
    object = serializers.CharField(source="result.sync_object.name")

    class Meta:
        model = DISVerificationDifference
        fields = ["id", "object", "record_id", "kind", "reason", "detail"]


class NewRun(serializers.Serializer):
    district = serializers.CharField(max_length=16, help_text="District code.")
    year = WholeNumberField(
        required=False, allow_null=True, help_text="Ending year (2027 is 2026-27); the scoped year if absent."
    )
    objects = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        allow_null=True,
        help_text="Objects to compare (any case); absent: every object offered that you may resync.",
    )


class RunFilter(filters.FilterSet):
    district = filters.CharFilter(field_name="district__code", help_text="District code.")
    school_year = IdFilter()

    class Meta:
        model = VerificationRun
        fields = ["district", "school_year", "status", "level"]


class DifferenceFilter(filters.FilterSet):
    object = filters.CharFilter(field_name="result__sync_object__name", help_text="Sync object name.")
    kind = filters.ChoiceFilter(choices=DISVerificationDifference.Kind.choices)

    class Meta:
        model = DISVerificationDifference
        fields = ["object", "kind"]


def visible_runs(user) -> QuerySet[VerificationRun]:
    """The runs `user` may know of (never the state's for a district user), with their
    totals; the differences and the one-click resync are reached through these only."""
    results = DISVerificationResult.objects.select_related("sync_object").order_by("id")
    return (
        VerificationRun.objects.visible_to(user)
        .with_resync_shown(user)
        .select_related("district", "requested_by")
        .prefetch_related(Prefetch("results", queryset=results))
        .with_totals()
        .order_by("-id")  # Meta.ordering does not apply to a grouped query
    )


@extend_schema_view(
    list=extend_schema(
        summary="Verifications of the districts you may see",
        responses={200: RunSerializer, **errors(400, 403, 404)},
    ),
    retrieve=extend_schema(
        summary="One verification with its per-object counts",
        responses={200: RunDetailSerializer, **errors(403, 404)},
    ),
    create=extend_schema(
        summary="Run a verification",
        description="Compares the district and state stores on an RQ worker; poll the verification "
        "for progress. Needs Verification Summary W (and, for a district user, the state's switch on).",
        request=NewRun,
        responses={201: RunDetailSerializer, **errors(400, 403)},
    ),
)
class VerificationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, Endpoint
):
    permission_classes = [permissions.IsAuthenticated, Holds]
    required_perm = VERIFY_VIEW
    serializer_class = RunSerializer
    detail_serializer_class = RunDetailSerializer
    filterset_class = RunFilter

    def get_queryset(self) -> QuerySet[VerificationRun]:
        return visible_runs(self.request.user)

    def create(self, request: Request) -> Response:
        b = self.valid(NewRun, request.data)
        district = district_named(request.user, b["district"])
        with refusals_answered():
            checked = verify.check_verification(district, b.get("year"), b.get("objects"), user=request.user)
        run = verify.do_request_verification(checked)
        return self.created(RunDetailSerializer(self.get_queryset().get(pk=run.pk)))

    @extend_schema(
        summary="The records that differ, for drill-down",
        parameters=[
            OpenApiParameter("object", str, description="Sync object name."),
            OpenApiParameter("kind", str, enum=DISVerificationDifference.Kind.values),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
        ],
        responses={200: DifferenceSerializer(many=True), **errors(400, 403, 404)},
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=Page)
    def differences(self, request: Request, pk: str) -> Response:
        run = self.get_object()
        rows = DISVerificationDifference.objects.filter(result__run=run).select_related("result__sync_object")
        found = DifferenceFilter(request.query_params, queryset=rows.order_by("id"))
        refuse_empty(found, request.query_params)
        if not found.is_valid():
            raise ValidationError(found.errors)
        page = self.paginate_queryset(found.qs)
        return self.get_paginated_response(DifferenceSerializer(page, many=True).data)

    @extend_schema(
        summary="Resync exactly the objects that differ, with Check Dependencies",
        description="One call: a partial resync of the objects where a resync would change something, "
        "checked as any resync (403 names objects you hold no tool right for).",
        request=None,
        responses={201: ResyncRequestDetailSerializer, **errors(400, 403, 404)},
    )
    @action(detail=True, methods=["post"])
    def resync(self, request: Request, pk: str) -> Response:
        run = self.get_object()
        with refusals_answered():
            checked = verify.check_verification_resync(run, request.user)
            created = verify.do_verification_resync(run, checked)
        return self.created(ResyncRequestDetailSerializer(visible_requests(request.user).get(pk=created.pk)))
