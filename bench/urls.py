"""The portal's URLs plus `/bench/bare`: a plain Django view behind the same middleware.

The difference between `GET /bench/bare` and `GET /api/v1/me` is the API layer: DRF,
API key authentication, role / scope permissions, rate limits, idempotency plumbing and
the serializer.
"""

from django.http import JsonResponse
from django.urls import path

from portal.urls import handler400, handler403, handler404, handler500  # noqa: F401
from portal.urls import urlpatterns as portal_urlpatterns

#: About the size and shape of a `/api/v1/me` body, so both responses cost the same to send.
BARE_BODY = {
    "id": 1,
    "username": "bench-trader",
    "email": "bench-trader@tradeport.local",
    "first_name": "Bench",
    "last_name": "Trader",
    "role": "trader",
    "two_factor_enabled": False,
    "auth_method": "api_key",
    "api_key": {"id": 1, "prefix": "0123456789ab", "scopes": ["read"]},
    "date_joined": "2025-01-01T00:00:00Z",
    "last_login": None,
}


def bare(request):
    """A fixed JSON body: no database, no cache, no DRF."""
    return JsonResponse(BARE_BODY)


urlpatterns = [path("bench/bare", bare, name="bench-bare"), *portal_urlpatterns]
