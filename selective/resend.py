"""Resend what failed, record by record: a Selective Sync of exactly a request's failed
records, where the object supports it (PersonIdentity, Enrollment).

tool.resend sends the objects with errors whole; this narrows the resend to the
records that failed, checked by check_selective_sync as any Selective Sync (its
right, the records at either store). A missing parent is refused: Selective Sync
sends no parents, so those records would fail again (resend the objects instead,
with Check Dependencies).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import errors, refusals_answered
from core.errors import REFUSALS, ResyncError
from history.models import ErrorLog
from resync.models import District
from resync.rules import Reason
from tool.actions import Checked
from tool.api import ResyncRequestDetailSerializer, failed_rows, visible_requests

from .actions import SELECTIVE_MAX, SELECTIVE_OBJECTS, check_selective_sync, do_selective_sync


def check_resend_records(rows: QuerySet[ErrorLog], user: User | None = None) -> Checked:
    """The Selective Sync of exactly the failed records among `rows` (narrowed to what the
    user may see): all of one district, school year and object Selective Sync resyncs."""
    scopes = list(
        rows.order_by().values_list("district_id", "step__school_year", "sync_object__name").distinct()
    )
    if not scopes:
        raise ResyncError("No errors to resend: the Error Log selected holds none.", "errors")
    if len(scopes) > 1:
        names = ", ".join(sorted({name for _d, _y, name in scopes}))
        raise ResyncError(
            f"A Selective Sync resends the records of one object of one district and year; the errors "
            f"selected are of several ({names}): resend the objects instead.",
            "errors",
        )
    ((district_id, year, name),) = scopes
    if name not in SELECTIVE_OBJECTS:
        raise ResyncError(
            f"Selective Sync resyncs {' or '.join(SELECTIVE_OBJECTS)} records, not {name}: resend the object.",
            "errors",
        )
    if rows.filter(reason=Reason.PARENT_MISSING).exists():
        raise ResyncError(
            "A parent of these records was missing, and a Selective Sync sends no parents: resend the "
            "objects instead (with Check Dependencies).",
            "errors",
        )
    # Distinct before the cut: a record that failed twice must not crowd out another.
    ids = sorted(rows.order_by().values_list("record_id", flat=True).distinct()[: SELECTIVE_MAX + 1])
    district = District.objects.select_related("state").get(pk=district_id)
    return check_selective_sync(district, year, name, ids, user=user)


def may_offer(objects: Iterable[str]) -> bool:
    """Could check_resend_records accept errors of these objects? A first test from what
    a page already holds, before any query: errors of one object Selective Sync resyncs."""
    names = set(objects)
    return len(names) == 1 and names <= set(SELECTIVE_OBJECTS)


def accepts(rows: QuerySet[ErrorLog], user: User) -> bool:
    """Would check_resend_records send these rows' records for `user`? A page offers
    the action only then."""
    try:
        check_resend_records(rows, user)
    except REFUSALS:
        return False
    return True


class RecordsResend(serializers.Serializer):
    district = serializers.CharField()
    year = serializers.IntegerField()
    object = serializers.CharField()
    records = serializers.ListField(child=serializers.IntegerField(), help_text="The failed record ids.")


class ResendFailedRecords(APIView):
    """GET /api/v1/requests/<id>/resend-failed-records/ previews, POST sends (201)."""

    permission_classes = [permissions.IsAuthenticated]

    def checked(self, request: Request, pk: int) -> Checked:
        # Among the requests the user may see: another's, or a state request for a district user, is a 404.
        req = visible_requests(request.user).filter(pk=pk).first()
        if req is None:
            raise NotFound(f"No resync request {pk} among those you may see.")
        with refusals_answered():
            return check_resend_records(failed_rows(request.user, req), request.user)

    @extend_schema(
        summary="What resending a request's failed records would send",
        description="A Selective Sync of exactly the request's failed records, when they are all of "
        "PersonIdentity or of Enrollment and no parent was missing; nothing is sent.",
        responses={200: RecordsResend, **errors(400, 403, 404)},
    )
    def get(self, request: Request, pk: int) -> Response:
        c = self.checked(request, pk)
        return Response(
            {"district": c.district.code, "year": c.year, "object": c.objects[0], "records": c.records}
        )

    @extend_schema(
        summary="Resend a request's failed records (Selective Sync)",
        description="Sends the Selective Sync the GET describes, with Selective Sync's rights (W).",
        request=None,
        responses={201: ResyncRequestDetailSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, pk: int) -> Response:
        c = self.checked(request, pk)
        with refusals_answered():
            created = do_selective_sync(c)
        answer = ResyncRequestDetailSerializer(visible_requests(request.user).get(pk=created.pk))
        return Response(answer.data, status=201)
