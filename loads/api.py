"""The load API: a district's SIS or ETL loads its records over REST, and reads its loads.

- `district-records/<district>/<Object>/`: POST upserts a batch (at most MAX_RECORDS),
  PUT replaces the whole object and year (a snapshot; as NDJSON it is read as a stream,
  record by record, with no count limit), `delete/` deletes by ids.
- `loads/`: the Load rows of the districts the user may see.

One home for every rule: the views read the body and call loads.actions (check_load,
wire_rows, do_load, do_delete), as import_records does, so the API and a file refuse the
same records for the same reasons. A district the user may not see is a 404; one they
see without the district data W right a 403. Every 400 (and the 413 and 415) is an
RFC 9457 problem (application/problem+json) listing each bad record by index, id and
field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import chain

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import Endpoint, errors
from core.errors import Busy, ResyncError, RightsError
from core.parsers import DuplicateKey, is_whole_number, strict_loads
from resync import rights

from .actions import (
    MAX_IDS,
    SHOWN,
    CheckedLoad,
    LoadResult,
    RowProblem,
    check_load,
    check_record_ids,
    do_delete,
    do_load,
    wire_rows,
)
from .files import Unreadable, read_ndjson
from .models import Load
from .rights import check_load_right

MAX_RECORDS = 10_000  # records one batch (and one JSON-array snapshot) may hold
# A JSON array is parsed whole, so its bytes are bounded: 10,000 records of 5 KiB each.
MAX_BODY = 50 * 1024 * 1024
JSON, NDJSON = "application/json", "application/x-ndjson"
PROBLEM = "application/problem+json"
TYPES = "urn:statesync:problem:"  # a problem's `type`: this prefix and its kind


class Problem(Exception):
    """An answer in RFC 9457 problem details: `kind` names the problem's type."""

    def __init__(
        self, status: int, kind: str, title: str, detail: str, found: list[dict] | None = None, count: int = 0
    ):
        super().__init__(detail)
        self.status, self.kind, self.title, self.detail = status, kind, title, detail
        self.found, self.count = found or [], count

    def answer(self) -> Response:
        body = {
            "type": TYPES + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "errors": self.found,
            "error_count": self.count or len(self.found),
        }
        response = Response(body, status=self.status, content_type=PROBLEM)
        if self.status == 409:
            response["Retry-After"] = str(Busy.retry_after)
        return response


def busy(detail: str, field: str = "") -> Problem:
    """Refused for now (a resync step reads these records): the same call may pass later."""
    found = [{"index": None, "record_id": None, "field": field, "message": detail}]
    return Problem(409, "busy", "A resync is reading these records", detail, found)


def bad_input(detail: str, field: str = "") -> Problem:
    """A request StateSync cannot take as a whole (not its records one by one)."""
    found = [{"index": None, "record_id": None, "field": field, "message": detail}]
    return Problem(400, "bad-request", "The request cannot be loaded", detail, found)


def too_many(what: str, most: int) -> Problem:
    return Problem(
        413,
        "too-many-records",
        "Too many records in one call",
        f"One call takes at most {most:,} {what}: split it into several calls"
        + (", or send a snapshot as NDJSON, which has no limit." if what == "records" else "."),
    )


def listed(problems: list[RowProblem]) -> list[dict]:
    # do_load numbers rows from 1 and gives 0 to a problem of the load as a whole.
    return [
        {
            "index": p.line - 1 if p.line else None,
            "record_id": p.record_id,
            "field": p.field,
            "message": p.message,
        }
        for p in problems
    ]


# ---- Reading the request ---------------------------------------------------------------


def _query(request: Request) -> tuple[int | None, bool]:
    """?year= and ?skip_invalid=, read as strictly as the rest of the API reads them."""
    year, skip = request.query_params.get("year"), request.query_params.get("skip_invalid", "false")
    if year is not None and not is_whole_number(year):
        raise bad_input(f"year is a school year by its ending year (2027 for 2026-27), not {year!r}.", "year")
    if skip.lower() not in ("true", "false", "1", "0"):
        raise bad_input(f"skip_invalid is true or false, not {skip!r}.", "skip_invalid")
    return (None if year is None else int(year)), skip.lower() in ("true", "1")


def _media_type(request: Request, allowed: tuple[str, ...]) -> str:
    given = (request.content_type or "").split(";")[0].strip().lower()
    if not given and request.META.get("CONTENT_LENGTH") in (None, "", "0"):
        raise bad_input("The body is empty: send a JSON array of records, or NDJSON.")
    if given not in allowed:
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"Send the body as {' or '.join(allowed)}, not {given or 'no Content-Type'}.",
        )
    return given


def _json(request: Request, skip: bool = False):
    """The body as JSON: whole, bounded by MAX_BODY, strictly parsed (core.parsers).
    `skip` (skip_invalid): a record naming a key twice is marked (_Doubled) for _rows
    to refuse alone, as an NDJSON line of it would be, instead of refusing the body."""
    raw = request._request.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise Problem(413, "body-too-large", "Body too large", f"The body is over {MAX_BODY:,} bytes.")
    if not raw.strip():
        raise bad_input("The body is empty: send a JSON array of records, or NDJSON.")
    try:
        text = raw.decode("utf-8")
        return strict_loads(text)
    except UnicodeDecodeError:
        raise bad_input("The body is not valid UTF-8.") from None
    except RecursionError:
        raise bad_input("The body nests too deep to be records.") from None
    except DuplicateKey as e:
        if skip:
            body = _marked_body(text)
            if isinstance(body, list):
                return body
        raise _doubled(text, e) from None
    except ValueError as e:
        raise bad_input(f"The body is not JSON: {e}.") from None


class _Doubled(dict):
    """An object that named `key` twice, marked so that its record can be named."""

    key = ""


def _marked(pairs: list[tuple[str, object]]) -> dict:
    found = dict(pairs)
    if len(found) == len(pairs):
        return found
    seen: set[str] = set()
    doubled = _Doubled(found)
    doubled.key = next(k for k, _ in pairs if k in seen or seen.add(k))
    return doubled


def _marked_body(text: str):
    """The body read again, each object naming a key twice a _Doubled (a Problem when it
    nests too deep for that)."""
    try:
        return json.loads(text, object_pairs_hook=_marked)
    except RecursionError:
        return bad_input("The body nests too deep to hold records.")


def _doubled_key(row) -> str | None:
    """The key some object in `row` names twice, or None."""
    stack = [row]
    while stack:
        value = stack.pop()
        if isinstance(value, _Doubled):
            return value.key
        stack.extend(value.values() if isinstance(value, dict) else value if isinstance(value, list) else ())
    return None


def _twice(key: str) -> str:
    return f"the key {key!r} appears twice in one object: send each key once."


def _doubled(text: str, error: DuplicateKey) -> Problem:
    """strict_loads refused a key named twice: which records? The body is read again,
    marking such objects, and each record holding one is listed as an NDJSON line
    would be (read_ndjson words it so), so both bodies name it alike."""
    body = _marked_body(text)
    if isinstance(body, Problem):
        return body
    if not isinstance(body, list):
        return bad_input(f"The body is refused: {error}; send each key once.")
    found = []
    for index, row in enumerate(body):
        key = _doubled_key(row)
        if key is not None:
            found.append({"index": index, "record_id": None, "field": "", "message": _twice(key)})
    return Problem(
        400,
        "invalid-records",
        "Invalid records",
        f"{len(found)} record(s) name a key twice: nothing was written.",
        found[:SHOWN],
        len(found),
    )


def _row(row) -> dict | Unreadable:
    """A JSON array's element as do_load takes it."""
    if not isinstance(row, dict):
        return Unreadable(f"a record is a JSON object, not {type(row).__name__}.")
    key = _doubled_key(row)
    return row if key is None else Unreadable(_twice(key))


def _rows(
    request: Request, media: str, most: int | None, skip: bool = False
) -> Iterator[tuple[int, dict | Unreadable]]:
    """The body's records as do_load takes them, `(number from 1, row)`: a JSON array's
    elements, or NDJSON's lines read one at a time from the request's stream (never the
    whole body in memory). Past `most` records the load stops (a 413; do_load's
    transaction rolls back what it wrote)."""
    if media == JSON:
        body = _json(request, skip)
        if not isinstance(body, list):
            raise bad_input(f"The body is a JSON array of records, not {type(body).__name__}.")
        if most is not None and len(body) > most:
            raise too_many("records", most)
        return ((i, _row(row)) for i, row in enumerate(body, 1))
    lines = read_ndjson(request._request)
    first = next(lines, None)
    if first is None:
        raise bad_input("The body is empty: send one JSON record a line.")
    return _bounded(chain([first], lines), most)


def _bounded(rows: Iterator, most: int | None) -> Iterator:
    for count, row in enumerate(rows, 1):
        if most is not None and count > most:
            raise too_many("records", most)
        yield row


def _checked(request: Request, code: str, obj: str) -> CheckedLoad:
    """check_load for this user: 404 for a district they may not see, 403 without the
    district data W right (both before any input is read), then a 400 problem for a
    query, object or year check_load refuses."""
    district = rights.district_named(request.user, code)
    if district is None:
        raise NotFound(f"No district {code!r} among those you may see.")
    try:
        check_load_right(request.user, district)
    except RightsError as e:
        raise PermissionDenied(str(e)) from None
    year, _skip = _query(request)
    try:
        return check_load(district, obj, year, request.user)
    except ResyncError as e:
        raise bad_input(str(e), e.field) from None


# ---- The answers -----------------------------------------------------------------------


class RecordIn(serializers.Serializer):
    """A record as StateSync receives it (import_records' NDJSON line): its keys, then its
    payload fields at the top level, as the object's schema names them."""

    record_id = serializers.IntegerField(min_value=1, help_text="The district's id, a positive integer.")
    school_year = serializers.IntegerField(
        required=False,
        help_text="For a year-tied object; the call's ?year= when left out. Refused on others.",
    )
    parents = serializers.DictField(
        child=serializers.IntegerField(),
        required=False,
        help_text="{ParentObject: parent record id} for each immediate parent the catalog names.",
    )
    state_excluded = serializers.BooleanField(required=False)


class RecordError(serializers.Serializer):
    index = serializers.IntegerField(
        allow_null=True,
        help_text="The record's place from 0: in the JSON array, or its NDJSON line counted from 0; "
        "null for a problem of the call as a whole.",
    )
    record_id = serializers.IntegerField(
        allow_null=True, help_text="Null when the record has none that reads."
    )
    field = serializers.CharField(help_text='The field at fault; "" for the record as a whole.')
    message = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details, with the records at fault."""

    type = serializers.CharField(help_text="A URN naming the kind of problem.")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    errors = RecordError(many=True, help_text=f"The first {SHOWN} problems.")
    error_count = serializers.IntegerField(help_text="Every problem found, listed or not.")


class LoadAnswer(serializers.Serializer):
    load = serializers.IntegerField(help_text="The Load row recording this call (loads/).")
    read = serializers.IntegerField()
    inserted = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField(help_text="Records whose content did not change: not written.")
    deleted = serializers.IntegerField()
    rejected = serializers.IntegerField(help_text="Records refused (with skip_invalid=true, not loaded).")
    errors = RecordError(many=True, help_text=f"Why, for the first {SHOWN} refused.")
    error_count = serializers.IntegerField()
    note = serializers.CharField(help_text="Why a snapshot deleted nothing, when it did not.")


class DeleteIn(serializers.Serializer):
    record_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=MAX_IDS
    )


class DeleteAnswer(serializers.Serializer):
    load = serializers.IntegerField()
    read = serializers.IntegerField(help_text="Distinct ids named.")
    deleted = serializers.IntegerField()
    unknown = serializers.ListField(
        child=serializers.IntegerField(), help_text=f"The first {SHOWN} ids not found: reported, not refused."
    )
    unknown_count = serializers.IntegerField()


def problems_doc(*codes: int) -> dict:
    words = {
        400: "Refused, nothing written: every bad record by index, record id and field (RFC 9457).",
        409: "Refused for now, nothing written: a resync step is reading these records; "
        "try again after Retry-After seconds.",
        413: f"More than {MAX_RECORDS:,} records (or ids) in one call, or a body over {MAX_BODY:,} bytes.",
        415: "A body neither application/json nor application/x-ndjson.",
    }
    return {(c, PROBLEM): OpenApiResponse(ProblemSerializer, description=words[c]) for c in codes}


QUERY = [
    OpenApiParameter(
        "year",
        int,
        description="School year by its ending year; a year-tied object's default is the "
        "district's scoped year. Refused for an object not tied to a year.",
    ),
    OpenApiParameter(
        "skip_invalid",
        bool,
        description="Load the valid records and list the refused ones (200), "
        "instead of refusing the whole call (400).",
    ),
]
PATH = [
    OpenApiParameter("code", str, OpenApiParameter.PATH, description="District code."),
    OpenApiParameter("object", str, OpenApiParameter.PATH, description="Sync object name, as Enrollment."),
]
BODY = {JSON: RecordIn(many=True), NDJSON: OpenApiTypes.STR}


class ProblemView(APIView):
    """Answers a Problem as problem details; every other error as the API does."""

    def handle_exception(self, exc):
        if isinstance(exc, Problem):
            return exc.answer()
        return super().handle_exception(exc)


def answered(result: LoadResult) -> Response:
    if result.busy:
        raise busy(result.problems[-1].message)
    if not result.written:
        raise Problem(
            400,
            "invalid-records",
            "Invalid records",
            f"{result.problem_count} problem(s) in {result.rejected} record(s): nothing was written.",
            listed(result.problems),
            result.problem_count,
        )
    counts = ("read", "inserted", "updated", "unchanged", "deleted", "rejected")
    return Response(
        {
            "load": result.load.pk,
            **{k: getattr(result, k) for k in counts},
            "errors": listed(result.problems),
            "error_count": result.problem_count,
            "note": result.kept,
        }
    )


class DistrictRecords(ProblemView):
    """One district's records of one object: POST upserts a batch, PUT is a snapshot."""

    def _load(self, request: Request, code: str, object: str, snapshot: bool) -> Response:
        checked = _checked(request, code, object)
        media = _media_type(request, (JSON, NDJSON))
        skip = _query(request)[1]
        # A JSON snapshot is parsed whole, so it is bounded too; an NDJSON one streams.
        most = None if snapshot and media == NDJSON else MAX_RECORDS
        rows = wire_rows(checked, _rows(request, media, most, skip), "ndjson")
        return answered(do_load(checked, rows, snapshot=snapshot, skip_invalid=skip))

    @extend_schema(
        summary="Upsert a batch of a district's records",
        description=f"At most {MAX_RECORDS:,} records, as a JSON array or NDJSON (one record a line). "
        "Validated by the object's field schema as import_records validates a file. Atomic: one bad "
        "record and nothing is written (400 listing every problem), unless skip_invalid=true. Needs "
        "the district data W right.",
        parameters=[*PATH, *QUERY],
        request=BODY,
        responses={200: LoadAnswer, **problems_doc(400, 409, 413, 415), **errors(403, 404)},
    )
    def post(self, request: Request, code: str, object: str) -> Response:
        return self._load(request, code, object, snapshot=False)

    @extend_schema(
        summary="Replace a district's object (and year): a snapshot",
        description="The body is the whole object for that district and year: records it does not "
        "hold are deleted (and stamped, so the next resync removes them at the state). As NDJSON the "
        f"body is streamed with no count limit; a JSON array holds at most {MAX_RECORDS:,}. A snapshot "
        "with a refused record deletes nothing.",
        parameters=[*PATH, *QUERY],
        request=BODY,
        responses={200: LoadAnswer, **problems_doc(400, 409, 413, 415), **errors(403, 404)},
    )
    def put(self, request: Request, code: str, object: str) -> Response:
        return self._load(request, code, object, snapshot=True)


class DistrictRecordsDelete(ProblemView):
    @extend_schema(
        summary="Delete a district's records by id",
        description=f'{{"record_ids": [...]}}, at most {MAX_IDS:,}. Deletions are stamped as a '
        "snapshot's are; ids the district does not hold (in that year) are reported, not refused.",
        parameters=[*PATH, QUERY[0]],
        request={JSON: DeleteIn},
        responses={200: DeleteAnswer, **problems_doc(400, 409, 413, 415), **errors(403, 404)},
    )
    def post(self, request: Request, code: str, object: str) -> Response:
        checked = _checked(request, code, object)
        _media_type(request, (JSON,))
        body = _json(request)
        ids = body.get("record_ids") if isinstance(body, dict) else None
        if isinstance(ids, list) and len(ids) > MAX_IDS:
            raise too_many("record ids", MAX_IDS)
        try:
            ids = check_record_ids(ids)
        except ResyncError as e:
            raise bad_input(str(e), e.field) from None
        try:
            result = do_delete(checked, ids)
        except Busy as e:
            raise busy(str(e), e.field) from None
        return Response(
            {
                "load": result.load.pk,
                "read": result.read,
                "deleted": result.deleted,
                "unknown": result.unknown,
                "unknown_count": result.unknown_count,
            }
        )


# ---- The loads listing -----------------------------------------------------------------


class LoadSerializer(serializers.ModelSerializer):
    district = serializers.CharField(source="district.code")
    object = serializers.CharField(source="sync_object.name")
    loaded_by = serializers.CharField(source="loaded_by.username", allow_null=True)

    class Meta:
        model = Load
        fields = [
            "id",
            "district",
            "object",
            "school_year",
            "snapshot",
            "loaded_by",
            "loaded_at",
            "read",
            "inserted",
            "updated",
            "unchanged",
            "deleted",
            "rejected",
        ]


class LoadFilter(filters.FilterSet):
    district = filters.CharFilter(field_name="district__code", help_text="District code.")
    object = filters.CharFilter(field_name="sync_object__name", help_text="Sync object name.")

    class Meta:
        model = Load
        fields = ["district", "object"]


@extend_schema_view(
    list=extend_schema(
        summary="Loads of the districts you may see",
        description="Newest first: each file import and each load API call, with its counts.",
        responses={200: LoadSerializer, **errors(400, 404)},
    ),
    retrieve=extend_schema(summary="One load", responses={200: LoadSerializer, **errors(404)}),
)
class LoadViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, Endpoint):
    serializer_class = LoadSerializer
    filterset_class = LoadFilter

    def get_queryset(self) -> QuerySet[Load]:
        return Load.objects.filter(district__in=rights.districts(self.request.user)).select_related(
            "district", "sync_object", "loaded_by"
        )
