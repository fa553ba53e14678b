"""Root URLs: portal pages, admin, API v1, health probes and metrics."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from portal.api.errors import django_error_view
from portal.web import health_views, views

admin.site.site_header = "Tradeport operations"
admin.site.site_title = "Tradeport admin"
admin.site.index_title = "Run the venue"
# One sign-in path for everyone: lock-out and two-factor apply to the admin too.
admin.site.login = views.admin_login_redirect  # type: ignore[method-assign]

urlpatterns = [
    path("", include("portal.web.urls")),
    path("favicon.ico", RedirectView.as_view(url=static("portal/favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("api/v1/", include(("portal.api.v1.urls", "v1"), namespace="v1")),
    path("livez", health_views.livez, name="livez"),
    path("readyz", health_views.readyz, name="readyz"),
    path("healthz", health_views.healthz, name="healthz"),
    path("health", health_views.health, name="health"),
    path("metrics", health_views.metrics, name="prometheus-django-metrics"),
]

handler400 = django_error_view(400)
handler403 = django_error_view(403)
handler404 = django_error_view(404)
handler500 = django_error_view(500)
