"""The HTTP contract every app's API shares: pages, filters, rights, errors.

- `Page` and the filters (`IdFilter`, `MomentFilter`, `YesNoFilter`, through the
  `Filters` backend) refuse what they cannot read with a 400 naming the
  parameter, where DRF and django-filter would quietly ignore it.
- `Holds` is the 403 for a missing feature right (the view's `required_perm`).
- `Endpoint` is the viewset every list endpoint builds on: those pages and
  filters, JSON bodies through the strict parser, numeric ids in its URLs, a
  detail serializer apart from the list's, `valid()` for a body and `created()`
  for the 201.
- `errors()` documents an endpoint's error answers in the schema, one wording
  for every app; `refusals_answered` turns a check_* refusal into that answer
  (`core.errors.status_for`: 403 for a right, 400 for input); `not_found` is the
  JSON 404 for any other path under /api/.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from django import forms
from django.db.models import QuerySet
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.decorators import api_view
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import REFUSALS, ResyncError, RightsError, status_for
from core.parsers import StrictJSONParser, is_whole_number


class StrictPageSize:
    """A page size the client may choose, from 1 to 1000; one that is not a whole number
    in that range is a 400 naming it (DRF's paginators would quietly ignore it). Mixed
    into every paginator of the API, numbered or keyset."""

    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not is_whole_number(raw) or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError({"page_size": [f"Expected a whole number from 1 to {self.max_page_size}."]})
        return int(raw)


class Page(StrictPageSize, PageNumberPagination):
    """Page numbers; a page that is not a whole number is a 400 naming it too."""

    def get_page_number(self, request: Request, paginator) -> int | str:
        raw = request.query_params.get(self.page_query_param)
        if raw is None or raw in self.last_page_strings:
            return super().get_page_number(request, paginator)
        if not is_whole_number(raw) or int(raw) < 1:
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


class WholeNumberField(serializers.IntegerField):
    """An integer as JSON writes one (2027), or its ASCII digits as text. DRF's own
    IntegerField also takes 2027.0, '２０２７', ' 2027' and '2_027', which the admin's
    forms (tool.views.parse_year) and the commands refuse: the doors refuse alike."""

    def to_internal_value(self, data):
        if isinstance(data, str) and is_whole_number(data[1:] if data[:1] == "-" else data):
            data = int(data)
        if not isinstance(data, int) or isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


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
    """The view's `required_perm`, a right on a whole feature (Django permission),
    held by an active user; the 403 says `refusal` if the view words it, else names the perm."""

    def has_permission(self, request: Request, view) -> bool:
        perm = view.required_perm
        self.message = getattr(view, "refusal", None) or f"You need the {perm} right."
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.has_perm(perm))


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_found(request: Request, rest: str = "") -> Response:
    """Any other URL under /api/: a JSON 404 like the API's own, not Django's HTML page."""
    raise NotFound(f"No API endpoint at {request.path}.")


def api_error(error: RightsError | ResyncError) -> APIException:
    """The DRF exception answering a refusal, with the status `status_for` gives every door:
    403 naming the missing right, or 400 naming the field at fault."""
    if status_for(error) == 403:
        return PermissionDenied(str(error))
    return ValidationError({error.field: [str(error)]})


@contextmanager
def refusals_answered() -> Iterator[None]:
    """Answer a refusal raised by a check_* function (RightsError, ResyncError) as the API's error."""
    try:
        yield
    except REFUSALS as e:
        raise api_error(e) from None


class Endpoint(viewsets.GenericViewSet):
    """What every StateSync endpoint over rows with numeric ids shares: strict pages and
    filters (a parameter it cannot read is a 400 naming it), ids of digits only in its
    URLs, and the two steps of every create: a valid body, a 201 with what was made."""

    pagination_class = Page
    filter_backends = [Filters]
    parser_classes = [StrictJSONParser]
    lookup_value_regex = r"\d+"
    # A richer serializer for one row (and a create's answer) than for a list's rows.
    detail_serializer_class: type[serializers.Serializer] | None = None

    def get_serializer_class(self):
        if self.detail_serializer_class is not None and self.action != "list":
            return self.detail_serializer_class
        return super().get_serializer_class()

    @staticmethod
    def valid(serializer_class: type[serializers.Serializer], data) -> dict:
        """`data` as `serializer_class` validates it; a 400 naming each field in error."""
        given = serializer_class(data=data)
        given.is_valid(raise_exception=True)
        return given.validated_data

    @staticmethod
    def created(answer: serializers.Serializer) -> Response:
        return Response(answer.data, status=status.HTTP_201_CREATED)
