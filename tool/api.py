"""The REST API where a resync starts: districts and their plan preview, resync
requests and state resync requests.

Views parse input, call `tool.actions` (which validates and authorises
through `resync.rights`) and answer; what a user may see comes from
`rights.districts` and `rights.visible`, so the API shows what the tool shows.
A refusal for lack of a right is 403; anything the user may not even know of
(another district, a state request for a district user) is 404, or a 400 that
reads the same for "absent" and "not yours" when it arrives in a body.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Prefetch, QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import Endpoint, Holds, IdFilter, Page, WholeNumberField, errors, refusals_answered
from history.api import StepSerializer
from history.models import DISBatchHistory, ErrorLog
from resync import rights
from resync.models import District, ResyncRequest

from . import actions, resend

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
    year = WholeNumberField(
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
    cancelled_by = serializers.CharField(
        source="cancelled_by.username", allow_null=True, help_text="Who cancelled it while it waited."
    )
    schedule = serializers.IntegerField(
        source="schedule_id", read_only=True, allow_null=True, help_text="The schedule that sent it, or null."
    )

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
            "cancelled_by",
            "cancelled_at",
            "schedule",
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
        ResyncRequest.objects.select_related("district", "requested_by", "cancelled_by").prefetch_related(
            Prefetch("steps", queryset=steps)
        ),
        level="level",
    )


def district_named(user, code: str, field: str = "district") -> District:
    """The district `code` among the user's (rights.district_named), or a 400 on `field`
    that reads the same for a code that does not exist and one the user may not see."""
    district = rights.district_named(user, code)
    if district is None:
        raise ValidationError({field: [f"No district {code!r} among those you may resync."]})
    return district


def cancel_answer(view: Endpoint, request: Request) -> Response:
    """Cancel the request at this URL (tool.actions.check_cancel/do_cancel, as the admin and
    resync_cancel): looked up among those the user may see, so another's is a 404."""
    req = view.get_object()
    with refusals_answered():
        actions.check_cancel(req, request.user)
        actions.do_cancel(req, request.user)
    return Response(ResyncRequestDetailSerializer(visible_requests(request.user).get(pk=req.pk)).data)


CANCEL_DOC = extend_schema(
    summary="Cancel a waiting request",
    description="Only a request still waiting (none of its steps started): it is kept, status "
    "cancelled, with who cancelled it and when, and its steps never run. A state administrator "
    "may cancel any; a district user a district-level request they sent, or whose every object "
    "they hold the tool right for.",
    request=None,
    responses={200: ResyncRequestDetailSerializer, **errors(400, 403, 404)},
)


class ResendSerializer(PlanSerializer):
    errors = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="The request's errors per object, which the resend answers.",
    )
    check_dependencies = serializers.BooleanField(help_text="True when a parent was missing.")


def failed_rows(user, req: ResyncRequest) -> QuerySet[ErrorLog]:
    """The Error Log rows of `req`'s steps that `user` may see (the request is already theirs)."""
    return rights.visible(user, ErrorLog.objects.filter(step__request=req), level="step__request__level")


def resend_answer(r: resend.Resend) -> dict:
    return {**plan_answer(r.checked), "errors": r.errors, "check_dependencies": r.checked.check_dependencies}


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
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, Endpoint
):
    serializer_class = ResyncRequestSerializer
    detail_serializer_class = ResyncRequestDetailSerializer
    filterset_class = RequestFilter

    def get_queryset(self) -> QuerySet[ResyncRequest]:
        return visible_requests(self.request.user)

    def create(self, request: Request) -> Response:
        b = self.valid(NewResync, request.data)
        district = district_named(request.user, b["district"])
        with refusals_answered():
            checked = actions.check_resync(
                district, b.get("year"), b["objects"], b["check_dependencies"], user=request.user
            )
            created = actions.do_request_resync(checked)
        return self.created(ResyncRequestDetailSerializer(self.get_queryset().get(pk=created.pk)))

    @CANCEL_DOC
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        return cancel_answer(self, request)

    @extend_schema(
        methods=["GET"],
        summary="What resending a request's failures would send",
        description="The partial resync of exactly the objects with errors in the request (with Check "
        "Dependencies when a parent was missing), checked as the send would be; nothing is sent.",
        responses={200: ResendSerializer, **errors(400, 403, 404)},
    )
    @extend_schema(
        methods=["POST"],
        summary="Resend what failed",
        description="Sends the resync the GET describes (tool.actions.check_resync/do_request_resync): "
        "the same rights and refusals as any resync request.",
        request=None,
        responses={201: ResyncRequestDetailSerializer, **errors(400, 403, 404)},
    )
    @action(detail=True, methods=["get", "post"], url_path="resend-failed")
    def resend_failed(self, request: Request, pk: str) -> Response:
        req = self.get_object()  # among those the user may see: another's is a 404
        with refusals_answered():
            checked = resend.check_resend_failed(failed_rows(request.user, req), request.user)
            if request.method == "GET":
                return Response(resend_answer(checked))
            created = resend.do_resend_failed(checked)
        return self.created(ResyncRequestDetailSerializer(self.get_queryset().get(pk=created.pk)))


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
class StateRequestViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, Endpoint):
    permission_classes = [permissions.IsAuthenticated, Holds]
    required_perm = rights.STATE_VIEW
    refusal = "Only state users (state resync R) see state resync requests."
    serializer_class = ResyncRequestSerializer
    filterset_class = RequestFilter

    def get_queryset(self) -> QuerySet[ResyncRequest]:
        return visible_requests(self.request.user).filter(level=ResyncRequest.Level.STATE)

    def create(self, request: Request) -> Response:
        b = self.valid(NewStateResync, request.data)
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
        with refusals_answered(), transaction.atomic():  # one refused: none is sent
            created = [r.pk for r in actions.do_request_resyncs(checks)]
        return self.created(
            StateSent({"requests": self.get_queryset().filter(pk__in=created).order_by("id")})
        )

    @CANCEL_DOC
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        return cancel_answer(self, request)
