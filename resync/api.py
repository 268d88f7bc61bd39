"""The REST API of the catalog: every sync object, and which ones you may resync.

The endpoints of districts, resync requests and state requests are where a
resync starts, in tool.api.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from core.api import Page, errors
from resync import planner, rights
from resync.models import SyncObject

# ---- the catalog -----------------------------------------------------------------


class SyncObjectSerializer(serializers.ModelSerializer):
    parents = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    children = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    ancestors = serializers.SerializerMethodField(
        help_text="Every object it depends on, top level first (the article's Parent Objects)."
    )
    may_resync = serializers.SerializerMethodField(help_text="You hold the tool right for it.")

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

    queryset = SyncObject.objects.prefetch_related("parents", "children")
    serializer_class = SyncObjectSerializer
    lookup_field = "name"
    pagination_class = Page

    def get_serializer_context(self) -> dict:
        return {
            **super().get_serializer_context(),
            "parents_map": SyncObject.objects.parents_map(),
            "allowed": rights.object_names(self.request.user),
        }
