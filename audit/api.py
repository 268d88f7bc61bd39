"""GET /api/v1/audit/: the trail, read-only (no create, change or delete), as the report shows it."""

from __future__ import annotations

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, permissions, serializers

from audit import doors, rights
from audit.models import AuditEntry
from core.api import Endpoint, MomentFilter, errors


class AuditEntrySerializer(serializers.ModelSerializer):
    district = serializers.CharField(source="district_code")
    user = serializers.CharField(source="username", help_text="Blank: the system itself.")

    class Meta:
        model = AuditEntry
        fields = ["id", "at", "user", "door", "district", "level", "action", "object_type", "object_id"]
        fields += ["object_repr", "detail"]


class AuditFilter(filters.FilterSet):
    user = filters.CharFilter(field_name="username")
    district = filters.CharFilter(field_name="district_code", help_text="District code.")
    door = filters.ChoiceFilter(choices=doors.CHOICES)
    action = filters.CharFilter()
    after = MomentFilter(field_name="at", lookup_expr="gte")
    before = MomentFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = ["user", "district", "door", "action"]


class MayRead(permissions.BasePermission):
    message = "Reading the audit trail needs the state's R and W rights or a District Administrator's."

    def has_permission(self, request, view) -> bool:
        return rights.may_read(request.user)


@extend_schema_view(
    list=extend_schema(
        summary="The audit trail you may read",
        description="A state administrator reads every entry; a District Administrator their "
        "districts' entries, never a state request's.",
        responses={200: AuditEntrySerializer, **errors(400, 403, 404)},
    )
)
class AuditViewSet(mixins.ListModelMixin, Endpoint):
    permission_classes = [permissions.IsAuthenticated, MayRead]
    serializer_class = AuditEntrySerializer
    filterset_class = AuditFilter

    def get_queryset(self) -> QuerySet[AuditEntry]:
        return rights.readable(self.request.user)
