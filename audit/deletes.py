"""An admin mixin recording what a deletion took (History D, Error Log D): one entry per
district and level, with the count, not one per row (a deletion may take thousands)."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from audit.trail import record
from resync.models import District


class RecordedDeletes:
    # The path from a row to its request's level: a state request's rows are the state's.
    audit_level = "request__level"

    def delete_model(self, request, obj) -> None:
        self._record(request, type(obj).objects.filter(pk=obj.pk))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset: QuerySet) -> None:
        self._record(request, queryset)
        super().delete_queryset(request, queryset)

    def _record(self, request, queryset: QuerySet) -> None:
        # Counted before the rows go, in the deletion's transaction (the admin's).
        groups = queryset.order_by().values("district_id", self.audit_level).annotate(n=Count("pk"))
        districts = District.objects.in_bulk({g["district_id"] for g in groups})
        name = self.opts.verbose_name_plural
        for g in groups:
            record(
                f"{self.opts.model_name}.deleted",
                districts.get(g["district_id"]),
                user=request.user,
                level=g[self.audit_level],
                detail=f"{g['n']} row{'s' if g['n'] != 1 else ''} deleted from {name}",
            )
