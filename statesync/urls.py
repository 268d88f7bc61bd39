from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "StateSync"
admin.site.site_title = "StateSync"
admin.site.index_title = "Resync State Data"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/", include("statesync.api_urls")),
]

# Django's own 400s (too many parameters, a bad admin filter) name the problem,
# and a 404 or a 500 under /api/ is JSON (core/errors.py).
handler400 = "core.errors.bad_request"
handler404 = "core.errors.page_not_found"
handler500 = "core.errors.server_error"
