"""The REST API (/api/v1/…), its OpenAPI schema and its doc pages, all under /api/."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from alerts.api import AlertViewSet
from audit.api import AuditViewSet
from core.api import not_found
from history.api import ErrorLogViewSet, HistoryViewSet
from loads.api import DistrictRecords, DistrictRecordsDelete, LoadViewSet
from notify.api import MyNotifications, WebhookViewSet
from resync.api import SyncObjectViewSet
from schedules.api import ScheduleViewSet
from selective.api import SelectiveSyncViewSet
from selective.resend import ResendFailedRecords
from statecopy.api import StateRecordViewSet
from tool.api import DistrictViewSet, ResyncRequestViewSet, StateRequestViewSet
from verification.api import VerificationViewSet

router = DefaultRouter()
router.register("sync-objects", SyncObjectViewSet, basename="syncobject")
router.register("districts", DistrictViewSet, basename="district")
router.register("requests", ResyncRequestViewSet, basename="request")
router.register("state-requests", StateRequestViewSet, basename="state-request")
router.register("history", HistoryViewSet, basename="history")
router.register("error-log", ErrorLogViewSet, basename="errorlog")
router.register("alerts", AlertViewSet, basename="alert")
router.register("verifications", VerificationViewSet, basename="verification")
router.register("selective-syncs", SelectiveSyncViewSet, basename="selective-sync")
router.register("state-records", StateRecordViewSet, basename="state-record")
router.register("loads", LoadViewSet, basename="load")
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("audit", AuditViewSet, basename="audit")
router.register("schedules", ScheduleViewSet, basename="schedule")

urlpatterns = [
    path("v1/", include(router.urls)),
    path("v1/district-records/<str:code>/<str:object>/", DistrictRecords.as_view(), name="district-records"),
    path(
        "v1/district-records/<str:code>/<str:object>/delete/",
        DistrictRecordsDelete.as_view(),
        name="district-records-delete",
    ),
    path("v1/notifications/", MyNotifications.as_view(), name="my-notifications"),
    path(
        "v1/requests/<int:pk>/resend-failed-records/",
        ResendFailedRecords.as_view(),
        name="request-resend-failed-records",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    # Last: every other path under /api/ (not only /api/v1/) is the API's JSON 404.
    re_path(r"^(?P<rest>.*)$", not_found),
]
