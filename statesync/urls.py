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
