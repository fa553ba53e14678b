"""Risk routes of /api/v1/ (included by portal/api/v1/urls.py)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from riskmgmt.api.v1 import views

router = SimpleRouter(trailing_slash=False)
router.register("risk-limits", views.RiskLimitViewSet, basename="risk-limit")
router.register("kill-switches", views.KillSwitchViewSet, basename="kill-switch")
router.register("risk/var", views.VarRunViewSet, basename="var-run")

urlpatterns = [
    path("risk/assessment", views.RiskAssessmentView.as_view(), name="risk-assessment"),
    path("risk/limits", views.RiskLimitsOfAccountView.as_view(), name="risk-limits-of-account"),
    *router.urls,
]
