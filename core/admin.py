"""Admin mixins every app's ModelAdmin shares."""

from __future__ import annotations

from django.http import Http404

from core.errors import log_refusal


class NotFoundNotRedirected:
    """An object the user may not see is a 404, as on the tool pages (the admin would
    redirect home, which tells an outsider nothing but looks like success)."""

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            log_refusal(
                request.user,
                "admin",
                f"{self.opts.verbose_name} {str(object_id)[:40]} (absent or not theirs)",
            )
            raise Http404("Not found.")
        return obj


class ReadOnly:
    """Rows StateSync writes itself (history, results): shown, never added or edited by hand."""

    def has_add_permission(self, request, obj=None):  # obj: inlines pass their parent
        return False

    def has_change_permission(self, request, obj=None):
        return False
