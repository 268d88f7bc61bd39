"""The REST API of the catalog: every sync object, and which ones you may resync.

The endpoints of districts, resync requests and state requests are where a
resync starts, in tool.api.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from core.api import Page, errors
from resync import planner, rights
from resync.models import SyncField, SyncObject

# ---- the catalog -----------------------------------------------------------------


class SyncFieldSerializer(serializers.ModelSerializer):
    codes = serializers.ListField(
        child=serializers.CharField(), help_text="The allowed codes, for type code."
    )
    owner = serializers.ChoiceField(
        choices=SyncField.Owner.choices,
        help_text="district: the district owns the value; state: locked at the state, a district "
        "load may not change it once the state holds it.",
    )

    class Meta:
        model = SyncField
        fields = ["name", "type", "required", "max_length", "codes", "description", "owner"]


class SyncObjectSerializer(serializers.ModelSerializer):
    parents = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    children = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    ancestors = serializers.SerializerMethodField(
        help_text="Every object it depends on, top level first (the article's Parent Objects)."
    )
    may_resync = serializers.SerializerMethodField(help_text="You hold the tool right for it.")
    schema = SyncFieldSerializer(
        source="fields", many=True, read_only=True, help_text="Its payload fields, in order."
    )

    class Meta:
        model = SyncObject
        fields = [
            "name",
            "parents",
            "children",
            "ancestors",
            "year_scoped",
            "syncs_other_years",
            "editions",
            "enabled",
            "note",
            "may_resync",
            "schema",
            "allows_extra",
        ]

    def get_ancestors(self, obj: SyncObject) -> list[str]:
        return planner.ancestor_order(self.context["parents_map"], obj.name)

    def get_may_resync(self, obj: SyncObject) -> bool:
        return obj.name in self.context["allowed"]


@extend_schema_view(
    list=extend_schema(
        summary="The sync-object catalog", responses={200: SyncObjectSerializer, **errors(400, 404)}
    ),
    retrieve=extend_schema(summary="One sync object", responses={200: SyncObjectSerializer, **errors(404)}),
)
class SyncObjectViewSet(viewsets.ReadOnlyModelViewSet):
    """The catalog is the same for everyone; `may_resync` says which objects you may resync."""

    # The schemas' fields in their order (SyncField's Meta), one query for every object.
    queryset = SyncObject.objects.prefetch_related("parents", "children", "fields")
    serializer_class = SyncObjectSerializer
    lookup_field = "name"
    pagination_class = Page

    def get_serializer_context(self) -> dict:
        return {
            **super().get_serializer_context(),
            "parents_map": SyncObject.objects.parents_map(),
            "allowed": rights.object_names(self.request.user),
        }
