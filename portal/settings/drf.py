"""Django REST framework, drf-spectacular and API rate limits."""

from .base import CACHES, env

# https://www.django-rest-framework.org/api-guide/settings/
REST_FRAMEWORK = {
    "DEFAULT_VERSIONING_CLASS": "rest_framework.versioning.NamespaceVersioning",
    "DEFAULT_VERSION": "v1",
    "ALLOWED_VERSIONS": ["v1"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api.authentication.ApiKeyAuthentication",
        "portal.api.authentication.CsrfSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["portal.api.permissions.IsAuthenticatedWithScope"],
    "DEFAULT_PAGINATION_CLASS": "portal.api.pagination.CreatedCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["portal.api.ratelimit.EndpointClassRateThrottle"],
    "EXCEPTION_HANDLER": "portal.api.errors.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": True,
    "DATETIME_FORMAT": "iso-8601",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

# https://drf-spectacular.readthedocs.io/en/latest/settings.html
SPECTACULAR_SETTINGS = {
    "TITLE": "Tradeport API",
    "DESCRIPTION": (
        "Versioned REST API of the Tradeport trading portal. Authenticate with an API key "
        "(`Authorization: Api-Key <key>` or `X-API-Key: <key>`) or a portal session (+ CSRF). "
        "Errors are RFC 9457 problem details. Every write accepts an `Idempotency-Key` header."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"SideEnum": "trading.choices.Side"},
}

#: Requests per window for each endpoint class, per API key / user / client IP.
API_RATE_LIMITS = {
    "read": env.str("RATELIMIT_READ", default="1200/m"),
    "write": env.str("RATELIMIT_WRITE", default="120/m"),
    "trade": env.str("RATELIMIT_TRADE", default="300/m"),
    "anonymous": env.str("RATELIMIT_ANONYMOUS", default="120/m"),
}
RATELIMIT_USE_CACHE = "ratelimit" if "ratelimit" in CACHES else "default"
#: Rejected API keys per client address; past it the address gets 429 instead of 401/403.
API_KEY_FAILURE_LIMIT_PER_IP = env.str("API_KEY_FAILURE_LIMIT_PER_IP", default="30/m")
#: Rate limits count per key, so this bounds what one user can draw with many keys.
API_KEY_MAX_ACTIVE_PER_USER = env.int("API_KEY_MAX_ACTIVE_PER_USER", default=20)

#: How long an Idempotency-Key and its stored response are kept.
IDEMPOTENCY_KEY_TTL_SECONDS = env.int("IDEMPOTENCY_KEY_TTL_SECONDS", default=24 * 3600)
#: A request still running after this long is taken as lost, so its key may be retried.
IDEMPOTENCY_LOCK_SECONDS = env.int("IDEMPOTENCY_LOCK_SECONDS", default=120)
#: Upper bound on how long a cached API key record lives (changes drop it at once).
API_KEY_CACHE_SECONDS = env.int("API_KEY_CACHE_SECONDS", default=300)
#: Keep API key records in each process too, dropped the moment Redis reports a change
#: (portal/tracked_cache.py); saves a Redis round trip per API call.
API_KEY_LOCAL_COPIES = env.bool("API_KEY_LOCAL_COPIES", default=True)
#: API key reads are audited at most once per key per this many seconds (writes always are).
API_KEY_USE_AUDIT_INTERVAL_SECONDS = env.int("API_KEY_USE_AUDIT_INTERVAL_SECONDS", default=60)
