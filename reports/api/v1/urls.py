"""Reports routes of /api/v1/ (included by portal/api/v1/urls.py)."""

from rest_framework.routers import SimpleRouter

from reports.api.v1 import report_views, views

router = SimpleRouter(trailing_slash=False)
router.register("exports", views.ExportViewSet, basename="export")
router.register("reports", report_views.ReportViewSet, basename="report")
router.register("report-schedules", report_views.ReportScheduleViewSet, basename="report-schedule")

urlpatterns = router.urls
