"""The one place /api/v1/ is assembled: each app's api/v1/urls.py is included here."""

from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_update
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from portal.api.v1.views import ApiKeyViewSet, JobViewSet, MeView, SystemInfoView

# The documentation UIs style themselves inline and ReDoc runs a blob: worker.
_docs_csp = csp_update({"style-src": [UNSAFE_INLINE], "worker-src": [SELF, "blob:"], "img-src": ["data:", "blob:"]})
_public: dict[str, list] = {"permission_classes": [], "authentication_classes": []}

router = SimpleRouter(trailing_slash=False)
router.register("api-keys", ApiKeyViewSet, basename="api-key")
router.register("jobs", JobViewSet, basename="job")

urlpatterns = [
    path("me", MeView.as_view(), name="me"),
    path("system/info", SystemInfoView.as_view(), name="system-info"),
    path("schema/", SpectacularAPIView.as_view(**_public), name="schema"),
    path("docs/", _docs_csp(SpectacularSwaggerSplitView.as_view(url_name="v1:schema", **_public)), name="docs"),
    path("redoc/", _docs_csp(SpectacularRedocView.as_view(url_name="v1:schema", **_public)), name="redoc"),
    *router.urls,
    path("", include("trading.api.v1.urls")),
    path("", include("marketdata.api.v1.urls")),
    path("", include("riskmgmt.api.v1.urls")),
    path("", include("reports.api.v1.urls")),
]
