"""The REST API for notifications: your email subscriptions, and the webhooks you manage."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import Endpoint, errors, refusals_answered
from core.errors import ResyncError
from core.parsers import StrictJSONParser

from . import actions, rights, signing
from .models import Delivery, EmailSubscription, Webhook

Names = inline_serializer(
    "EmailNotifications",
    {"names": serializers.ListField(child=serializers.CharField(help_text="An alert name."))},
)


class NamesIn(serializers.Serializer):
    names = serializers.ListField(child=serializers.CharField(max_length=100), allow_empty=True)


class MyNotifications(APIView):
    """The alert names mailed to you (each also stays in your Process Alerts inbox)."""

    parser_classes = [StrictJSONParser]

    @extend_schema(summary="The alerts you receive by email", responses={200: Names, **errors()})
    def get(self, request: Request) -> Response:
        names = EmailSubscription.objects.filter(user=request.user).order_by("name")
        return Response({"names": list(names.values_list("name", flat=True))})

    @extend_schema(
        summary="Choose the alerts you receive by email",
        request=NamesIn,
        responses={200: Names, **errors(400)},
    )
    def put(self, request: Request) -> Response:
        given = NamesIn(data=request.data)
        given.is_valid(raise_exception=True)
        with refusals_answered():
            names = actions.do_set_subscriptions(request.user, given.validated_data["names"])
        return Response({"names": names})


class WebhookSerializer(serializers.ModelSerializer):
    district = serializers.CharField(source="district.code", allow_null=True, read_only=True)

    class Meta:
        model = Webhook
        fields = ["id", "district", "url", "names", "active", "created_at"]


class NewWebhookSerializer(WebhookSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown in this answer only, never again.")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


def public_url(url: str) -> str:
    """An http(s) URL of public addresses only: the admin form's check, its words (notify.signing)."""
    try:
        return signing.check_address(url)
    except ResyncError as e:
        raise serializers.ValidationError(str(e)) from None


class WebhookIn(serializers.Serializer):
    district = serializers.CharField(
        required=False, allow_null=True, default=None, help_text="A district code; null for the state's."
    )
    url = serializers.CharField(max_length=500, validators=[public_url])
    names = serializers.ListField(child=serializers.CharField(max_length=100))
    active = serializers.BooleanField(default=True)


class WebhookChange(serializers.Serializer):
    url = serializers.CharField(max_length=500, required=False, validators=[public_url])
    names = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    active = serializers.BooleanField(required=False)


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = ["id", "event", "attempt", "status_code", "error", "at"]


@extend_schema_view(
    list=extend_schema(
        summary="The webhooks you manage", responses={200: WebhookSerializer, **errors(400, 404)}
    ),
    retrieve=extend_schema(
        summary="One webhook (never its secret)", responses={200: WebhookSerializer, **errors(404)}
    ),
    destroy=extend_schema(summary="Remove a webhook", responses={204: None, **errors(404)}),
)
class WebhookViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, Endpoint):
    queryset = Webhook.objects.none()  # the model, for the schema; rows come from get_queryset
    serializer_class = WebhookSerializer

    def get_queryset(self) -> QuerySet[Webhook]:
        # Another district's webhook is a 404: nobody learns it exists.
        return rights.webhooks(self.request.user).select_related("district")

    @extend_schema(
        summary="Add a webhook (its secret is in this answer only)",
        request=WebhookIn,
        responses={201: NewWebhookSerializer, **errors(400, 403, 404)},
    )
    def create(self, request: Request) -> Response:
        data = self.valid(WebhookIn, request.data)
        district = None
        if data["district"] is not None:
            district = rights.hook_districts(request.user).filter(code=data["district"]).first()
            if district is None:
                raise NotFound(f"No district {data['district']} whose webhooks you manage.")
        with refusals_answered():
            names = actions.check_webhook(request.user, district, data["url"], data["names"])
            hook = actions.do_create_webhook(request.user, district, data["url"], names, data["active"])
        return self.created(NewWebhookSerializer(hook))

    @extend_schema(
        summary="Change a webhook's address, alert names or switch (its district stays)",
        request=WebhookChange,
        responses={200: WebhookSerializer, **errors(400, 403, 404)},
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        hook = self.get_object()
        data = self.valid(WebhookChange, request.data)
        url = data.get("url", hook.url)
        with refusals_answered():
            names = actions.check_webhook(request.user, hook.district, url, data.get("names", hook.names))
            hook = actions.do_update_webhook(hook, url, names, data.get("active", hook.active))
        return Response(WebhookSerializer(hook).data)

    @extend_schema(
        summary="A webhook's delivery attempts, newest first",
        responses={200: DeliverySerializer(many=True), **errors(404)},
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str) -> Response:
        hook = self.get_object()
        page = self.paginate_queryset(hook.deliveries.all())
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)
