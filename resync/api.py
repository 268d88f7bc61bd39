"""The REST API for resyncs: the catalog, districts and their plan preview,
resync requests and state resync requests.

Views parse input, call `resync.actions` (which validates and authorises
through `resync.rights`) and answer; what a user may see comes from
`rights.districts` and `rights.visible`, so the API shows what the tool shows.
A refusal for lack of a right is 403; anything the user may not even know of
(another district, a state request for a district user) is 404, or a 400 that
reads the same for "absent" and "not yours" when it arrives in a body.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from django import forms
from django.db import transaction
from django.db.models import Prefetch, QuerySet
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action, api_view
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from history.models import DISBatchHistory
from resync import actions, planner, rights
from resync.models import District, ResyncRequest, SyncObject
from statesync.parsers import StrictJSONParser, whole_number

# ---- shared by every app's API -------------------------------------------------


class Page(PageNumberPagination):
    """Page numbers, with a page size the client may choose; a page or page size
    that is not a whole number is a 400 naming it (DRF would quietly ignore it)."""

    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not whole_number(raw) or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError({"page_size": [f"Expected a whole number from 1 to {self.max_page_size}."]})
        return int(raw)

    def get_page_number(self, request: Request, paginator) -> int | str:
        raw = request.query_params.get(self.page_query_param)
        if raw is None or raw in self.last_page_strings:
            return super().get_page_number(request, paginator)
        if not whole_number(raw) or int(raw) < 1:
            raise ValidationError({"page": ["Expected a page number from 1, or last."]})
        return raw

    def get_schema_operation_parameters(self, view) -> list[dict]:
        page, size = super().get_schema_operation_parameters(view)
        page["schema"]["minimum"] = 1
        size["schema"].update(minimum=1, maximum=self.max_page_size)
        return [page, size]


class Detail(serializers.Serializer):
    detail = serializers.CharField()


_ERRORS = {
    400: (
        OpenApiTypes.OBJECT,
        "Bad input: {field: [messages]} naming each field in error "
        "(`non_field_errors` for a body that is not an object), or {detail} for a body that is not JSON.",
    ),
    401: (Detail, "No credentials, or bad ones: send `Authorization: Token <key>` or a session cookie."),
    403: (Detail, "Signed in, but a right is missing; `detail` names it."),
    404: (
        Detail,
        "Not found: absent, or not yours to know of (another district's, a state request for a "
        "district user); or a page past the end.",
    ),
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """The documented error responses of an endpoint (401 applies to all)."""
    return {c: OpenApiResponse(response=_ERRORS[c][0], description=_ERRORS[c][1]) for c in (401, *codes)}


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(filters.NumberFilter):
    """A whole number, as ids and years are (django-filter's NumberFilter takes decimals)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        # Past a 64-bit integer the database driver itself fails (a 500), so refuse it here.
        super().__init__(*args, min_value=0, max_value=2**63 - 1, **kwargs)


class _UtcDateTime(IsoDateTimeField):
    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        # PostgreSQL takes offsets up to ±15:59 only; ISO 8601 allows more, so send UTC.
        try:
            return moment.astimezone(dt.UTC)
        except OverflowError:
            raise forms.ValidationError("Date and time out of range.") from None


class MomentFilter(filters.IsoDateTimeFilter):
    """An ISO 8601 date and time, any offset."""

    field_class = _UtcDateTime


class _StrictBoolean(forms.NullBooleanField):
    def to_python(self, value):
        if value in (None, ""):
            return None
        if str(value).lower() in ("true", "1"):
            return True
        if str(value).lower() in ("false", "0"):
            return False
        raise forms.ValidationError(f"Expected true or false, not {value!r}.")


class YesNoFilter(filters.BooleanFilter):
    """true or false; anything else is a 400 (django-filter would ignore it silently)."""

    field_class = _StrictBoolean

    def __init__(self, *args, **kwargs):
        # django-filter's BooleanWidget turns any unknown word into "no filter" before the field sees it.
        super().__init__(*args, widget=forms.TextInput, **kwargs)


def refuse_empty(filterset: filters.FilterSet, params) -> None:
    """An empty value is no filter only where the schema allows it, a string
    (`?district=`); an empty choice, number, date or boolean (`?level=`,
    `?school_year=`, `?date_to=`, `?unread=`) is a 400 naming it, as the schema
    says it must be one (django-filter would silently drop it)."""
    empty = {
        name: ["Empty: give a value or leave the parameter out."]
        for name, f in filterset.filters.items()
        if params.get(name) == "" and not isinstance(f, filters.CharFilter)
    }
    if empty:
        raise ValidationError(empty)


class Filters(filters.DjangoFilterBackend):
    """django-filter, refusing empty values the schema does not allow (refuse_empty)."""

    def filter_queryset(self, request: Request, queryset: QuerySet, view) -> QuerySet:
        filterset = self.get_filterset(request, queryset, view)
        if filterset is not None:
            refuse_empty(filterset, request.query_params)
        return super().filter_queryset(request, queryset, view)


class Holds(permissions.BasePermission):
    """The view's `required_perm`, a right on a whole feature (Django permission)."""

    def has_permission(self, request: Request, view) -> bool:
        perm = view.required_perm
        self.message = f"You need the {perm} right."
        return rights.active(request.user) and request.user.has_perm(perm)


class StateOnly(permissions.BasePermission):
    message = "Only state users (state resync R) see state resync requests."

    def has_permission(self, request: Request, view) -> bool:
        return rights.is_state(request.user)


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_found(request: Request, rest: str = "") -> Response:
    """Any other URL under /api/: a JSON 404 like the API's own, not Django's HTML page."""
    raise NotFound(f"No API endpoint at {request.path}.")


@contextmanager
def refusals_answered() -> Iterator[None]:
    """Answer a refusal from resync.actions: 400 naming the field, or 403 for a missing right."""
    try:
        yield
    except rights.RightsError as e:
        raise PermissionDenied(str(e)) from None
    except actions.ResyncError as e:
        raise ValidationError({e.field: [str(e)]}) from None


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


# ---- districts and the plan preview ---------------------------------------------------


class DistrictSerializer(serializers.ModelSerializer):
    state = serializers.CharField(source="state.code")
    years = serializers.ListField(
        child=serializers.IntegerField(), help_text="School years it may resync, current first."
    )

    class Meta:
        model = District
        fields = ["code", "name", "state", "scope_year", "years"]


class ResyncParams(serializers.Serializer):
    year = serializers.IntegerField(
        required=False, allow_null=True, help_text="Ending year (2027 is 2026-27); the scoped year if absent."
    )
    objects = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        help_text="Sync objects to resync (any case); leave out with all=true.",
    )
    all = serializers.BooleanField(default=False, help_text="A full resync: every object offered.")
    check_dependencies = serializers.BooleanField(
        default=False, help_text="Add every parent of the objects chosen, parents first."
    )

    def validate(self, data: dict) -> dict:
        if data["all"] and data.get("objects"):
            raise ValidationError({"objects": ["Give objects or all=true, not both."]})
        # None asks for a full resync; an empty list is refused by check_resync, naming it.
        data["objects"] = None if data["all"] else data.get("objects", [])
        return data


class PlanSerializer(serializers.Serializer):
    district = serializers.CharField()
    year = serializers.IntegerField()
    layers = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Objects that may run at once, parents' layers first.",
    )
    order = serializers.ListField(child=serializers.CharField())
    added = serializers.ListField(
        child=serializers.CharField(), help_text="Parents Check Dependencies added."
    )


def plan_answer(checked: actions.Checked) -> dict:
    plan = checked.plan
    return {
        "district": checked.district.code,
        "year": checked.year,
        "layers": [list(layer) for layer in plan.layers],
        "order": list(plan.order),
        "added": list(plan.added),
    }


@extend_schema_view(
    list=extend_schema(
        summary="Districts you may resync", responses={200: DistrictSerializer, **errors(400, 404)}
    ),
    retrieve=extend_schema(summary="One district", responses={200: DistrictSerializer, **errors(404)}),
)
class DistrictViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = DistrictSerializer
    lookup_field = "code"
    pagination_class = Page

    def get_queryset(self) -> QuerySet[District]:
        return rights.districts(self.request.user).select_related("state")

    @extend_schema(
        summary="Preview a resync's plan",
        description="What a resync request with these parameters would run, in order: the same "
        "check as sending it, so a refusal here is the refusal the send would get.",
        parameters=[ResyncParams],
        responses={200: PlanSerializer, **errors(400, 403, 404)},
    )
    @action(detail=True, methods=["get"])
    def plan(self, request: Request, code: str) -> Response:
        district = self.get_object()
        query = ResyncParams(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        with refusals_answered():
            checked = actions.check_resync(
                district, q.get("year"), q["objects"], q["check_dependencies"], user=request.user
            )
        return Response(plan_answer(checked))


# ---- resync requests ------------------------------------------------------------------------


class StepSerializer(serializers.ModelSerializer):
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


class TotalsSerializer(serializers.Serializer):
    steps = serializers.IntegerField()
    finished = serializers.IntegerField()
    processed = serializers.IntegerField()
    errors = serializers.IntegerField()
    sent = serializers.IntegerField()


class ResyncRequestSerializer(serializers.ModelSerializer):
    district = serializers.CharField(source="district.code")
    objects = serializers.ListField(
        source="objects_asked",
        child=serializers.CharField(),
        allow_null=True,
        help_text="The objects asked for; null for a full resync.",
    )
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True)

    class Meta:
        model = ResyncRequest
        fields = [
            "id",
            "district",
            "school_year",
            "level",
            "objects",
            "check_dependencies",
            "requested_by",
            "status",
            "outcome",
            "created_at",
            "started_at",
            "finished_at",
        ]


class ResyncRequestDetailSerializer(ResyncRequestSerializer):
    steps = StepSerializer(
        many=True, help_text="One per object, in run order, with its counts as they are now."
    )
    totals = serializers.SerializerMethodField()

    class Meta(ResyncRequestSerializer.Meta):
        fields = [*ResyncRequestSerializer.Meta.fields, "current_layer", "totals", "steps"]

    @extend_schema_field(TotalsSerializer)
    def get_totals(self, obj: ResyncRequest) -> dict:
        steps = obj.steps.all()  # prefetched: no query
        processed = sum(s.processed for s in steps)
        errors = sum(s.errors for s in steps)
        return {
            "steps": len(steps),
            "finished": sum(s.finished for s in steps),
            "processed": processed,
            "errors": errors,
            "sent": processed - errors,
        }


class NewResync(ResyncParams):
    district = serializers.CharField(max_length=16, help_text="District code.")


class RequestFilter(filters.FilterSet):
    district = filters.CharFilter(field_name="district__code", help_text="District code.")
    school_year = IdFilter()

    class Meta:
        model = ResyncRequest
        fields = ["district", "school_year", "status", "level"]


def visible_requests(user) -> QuerySet[ResyncRequest]:
    steps = DISBatchHistory.objects.select_related("sync_object").order_by("layer", "sync_object__name")
    return rights.visible(
        user,
        ResyncRequest.objects.select_related("district", "requested_by").prefetch_related(
            Prefetch("steps", queryset=steps)
        ),
        level="level",
    )


def district_named(user, code: str, field: str = "district") -> District:
    # The same answer for a code that does not exist and one the user may not see.
    district = rights.districts(user).filter(code=code).first()
    if district is None:
        raise ValidationError({field: [f"No district {code!r} among those you may resync."]})
    return district


@extend_schema_view(
    list=extend_schema(
        summary="Resync requests you may see",
        description="A district user sees their districts' district-level requests; a state user every request.",
        responses={200: ResyncRequestSerializer, **errors(400, 404)},
    ),
    retrieve=extend_schema(
        summary="One request with its steps and live counts",
        responses={200: ResyncRequestDetailSerializer, **errors(404)},
    ),
    create=extend_schema(
        summary="Request a resync",
        description="Validated and authorised as the tool's Send Resync: objects you hold no tool right "
        "for, and parents Check Dependencies needs that you may not resync, are refused by name (403).",
        request=NewResync,
        responses={201: ResyncRequestDetailSerializer, **errors(400, 403)},
    ),
)
class ResyncRequestViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    pagination_class = Page
    parser_classes = [StrictJSONParser]
    filterset_class = RequestFilter
    filter_backends = [Filters]
    lookup_value_regex = r"\d+"

    def get_queryset(self) -> QuerySet[ResyncRequest]:
        return visible_requests(self.request.user)

    def get_serializer_class(self):
        return ResyncRequestSerializer if self.action == "list" else ResyncRequestDetailSerializer

    def create(self, request: Request) -> Response:
        body = NewResync(data=request.data)
        body.is_valid(raise_exception=True)
        b = body.validated_data
        district = district_named(request.user, b["district"])
        with refusals_answered():
            checked = actions.check_resync(
                district, b.get("year"), b["objects"], b["check_dependencies"], user=request.user
            )
        created = actions.do_request_resync(checked)
        answer = ResyncRequestDetailSerializer(self.get_queryset().get(pk=created.pk))
        return Response(answer.data, status=status.HTTP_201_CREATED)


# ---- state resync requests ---------------------------------------------------------------------


class NewStateResync(ResyncParams):
    districts = serializers.ListField(
        child=serializers.CharField(max_length=16),
        allow_empty=False,
        min_length=1,
        help_text="District codes.",
    )


class StateSent(serializers.Serializer):
    requests = ResyncRequestSerializer(many=True, help_text="One per district, in the order given.")


@extend_schema_view(
    list=extend_schema(
        summary="State resync requests (state users only)",
        responses={200: ResyncRequestSerializer, **errors(400, 403, 404)},
    ),
    create=extend_schema(
        summary="Send a state resync request to one or more districts",
        description="Needs state resync W. All or nothing: every district is checked before any "
        "request is stored; the districts are alerted without learning which objects were asked for.",
        request=NewStateResync,
        responses={201: StateSent, **errors(400, 403)},
    ),
)
class StateRequestViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    permission_classes = [permissions.IsAuthenticated, StateOnly]
    serializer_class = ResyncRequestSerializer
    pagination_class = Page
    parser_classes = [StrictJSONParser]
    filterset_class = RequestFilter
    filter_backends = [Filters]

    def get_queryset(self) -> QuerySet[ResyncRequest]:
        return visible_requests(self.request.user).filter(level=ResyncRequest.Level.STATE)

    def create(self, request: Request) -> Response:
        body = NewStateResync(data=request.data)
        body.is_valid(raise_exception=True)
        b = body.validated_data
        codes = list(dict.fromkeys(b["districts"]))
        districts = [district_named(request.user, code, "districts") for code in codes]
        checks = []
        for district in districts:
            try:
                with refusals_answered():
                    checks.append(
                        actions.check_resync(
                            district,
                            b.get("year"),
                            b["objects"],
                            b["check_dependencies"],
                            user=request.user,
                            level=ResyncRequest.Level.STATE,
                        )
                    )
            except ValidationError as e:
                raise ValidationError(
                    {field: [f"District {district.code}: {m}" for m in ms] for field, ms in e.detail.items()}
                ) from None
        with transaction.atomic():
            created = [actions.do_request_resync(c).pk for c in checks]
        answer = StateSent({"requests": self.get_queryset().filter(pk__in=created).order_by("id")})
        return Response(answer.data, status=status.HTTP_201_CREATED)
