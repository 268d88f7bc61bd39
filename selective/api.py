"""The REST API of Selective Sync: its history, and resyncing single records.

Same rules as the rest of the API (core.api): views parse input, call one action
(selective.actions) and answer; a missing right is 403, anything the user may not
know of is 404.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, permissions, serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import Endpoint, Holds, IdFilter, WholeNumberField, errors, refusals_answered
from resync.models import ResyncRequest
from tool.api import ResyncRequestDetailSerializer, district_named, visible_requests
from verification.models import SelectiveSync

from . import actions
from .rights import SELECTIVE_VIEW, may_delete_selective


class SelectiveSerializer(ResyncRequestDetailSerializer):
    records = serializers.ListField(child=serializers.IntegerField(), help_text="The record ids resynced.")

    class Meta(ResyncRequestDetailSerializer.Meta):
        fields = [*ResyncRequestDetailSerializer.Meta.fields, "records"]


class NewSelective(serializers.Serializer):
    district = serializers.CharField(max_length=16, help_text="District code.")
    year = WholeNumberField(
        required=False, allow_null=True, help_text="Ending year (2027 is 2026-27); the scoped year if absent."
    )
    object = serializers.ChoiceField(choices=list(actions.SELECTIVE_OBJECTS))
    records = serializers.ListField(
        child=WholeNumberField(min_value=1, max_value=2**63 - 1),
        allow_empty=False,
        help_text="District person ids (PersonIdentity) or enrollment ids (Enrollment).",
    )


class SelectiveFilter(filters.FilterSet):
    district = filters.CharFilter(field_name="district__code", help_text="District code.")
    school_year = IdFilter()

    class Meta:
        model = ResyncRequest
        fields = ["district", "school_year", "status"]


@extend_schema_view(
    list=extend_schema(
        summary="Selective Sync history (Selective Sync R)",
        responses={200: SelectiveSerializer, **errors(400, 403, 404)},
    ),
    retrieve=extend_schema(
        summary="One Selective Sync", responses={200: SelectiveSerializer, **errors(403, 404)}
    ),
    create=extend_schema(
        summary="Resync single records (Selective Sync W)",
        description="Validated as a batch resync; its step, Error Log and history are a batch's.",
        request=NewSelective,
        responses={201: SelectiveSerializer, **errors(400, 403)},
    ),
    destroy=extend_schema(
        summary="Delete a finished Selective Sync from the history (Selective Sync D)",
        responses={204: None, **errors(400, 403, 404)},
    ),
)
class SelectiveSyncViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    Endpoint,
):
    permission_classes = [permissions.IsAuthenticated, Holds]
    required_perm = SELECTIVE_VIEW
    serializer_class = SelectiveSerializer
    filterset_class = SelectiveFilter

    def get_queryset(self) -> QuerySet[ResyncRequest]:
        return visible_requests(self.request.user).filter(records__isnull=False)

    def create(self, request: Request) -> Response:
        b = self.valid(NewSelective, request.data)
        district = district_named(request.user, b["district"])
        with refusals_answered():
            checked = actions.check_selective_sync(
                district, b.get("year"), b["object"], b["records"], user=request.user
            )
            created = actions.do_selective_sync(checked)
        return self.created(SelectiveSerializer(self.get_queryset().get(pk=created.pk)))

    def destroy(self, request: Request, pk: str) -> Response:
        sync = self.get_object()
        if not may_delete_selective(request.user):
            raise PermissionDenied("Deleting Selective Sync history needs its D right.")
        deleted, _ = SelectiveSync.objects.filter(pk=sync.pk).deletable().delete()
        if not deleted:
            raise ValidationError(
                {"status": [f"Selective Sync {sync.pk} has not finished; delete it once it has."]}
            )
        return Response(status=status.HTTP_204_NO_CONTENT)
