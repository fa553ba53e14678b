"""Core settings: environment, apps, middleware, database, cache, templates, static."""

from pathlib import Path
from typing import Any

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A local `.env` is optional; production sets real environment variables.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str(
    "SECRET_KEY",
    default="embedded-insecure-key-set-SECRET_KEY-in-production-0123456789abcdef",
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])

#: Public version string shown by /health and /api/v1/system/info.
TRADEPORT_VERSION = env.str("TRADEPORT_VERSION", default="0.1.0")

REDIS_URL = env.str("REDIS_URL", default="")
#: Embedded mode (DESIGN §3): no Redis means one process holds cache, channel layer and jobs.
EMBEDDED = not REDIS_URL

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "corsheaders",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_celery_beat",
    "channels",
    "portal.apps.PortalConfig",
    "audit.apps.AuditConfig",
    "trading.apps.TradingConfig",
    "marketdata.apps.MarketdataConfig",
    "riskmgmt.apps.RiskmgmtConfig",
    "reports.apps.ReportsConfig",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "portal.middleware.RequestContextMiddleware",
    "portal.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "portal.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.web.context_processors.navigation",
            ],
        },
    },
]

# https://docs.djangoproject.com/en/5.2/ref/databases/#connection-pool
# SQLite in IMMEDIATE mode takes the write lock when a transaction starts, so
# concurrent writers queue instead of failing half-way ("database is locked").
DATABASES = {
    "default": env.db(
        "DATABASE_URL",
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    # A health check costs a query per request; off by default, a dropped connection then
    # fails one request per process before Django reconnects (bench/README.md).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DB_CONN_HEALTH_CHECKS", default=False)
    # The ORM binds on the client and never prepares; the order path's own statements
    # (portal/rawsql.py) ask for preparation explicitly. Django turns preparation off unless
    # a threshold is set; this one is never reached by automatic preparation.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 2**31 - 1)
    if env.bool("DB_POOL", default=False):
        # psycopg's pool; CONN_MAX_AGE must be 0 with it (Django refuses otherwise).
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DB_POOL_MIN", default=2),
            "max_size": env.int("DB_POOL_MAX", default=10),
            "timeout": 10,
        }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES: dict[str, dict[str, Any]]
if EMBEDDED:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "tradeport",
        }
    }
    # One process holds every counter in embedded mode, so a local-memory cache is shared
    # by all requests it serves; django-ratelimit cannot know that.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]
else:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 2,
                "SOCKET_TIMEOUT": 2,
            },
            "KEY_PREFIX": "tradeport",
        }
    }
    # django-ratelimit's counters: the same Redis, one round trip per count (portal/cache.py).
    CACHES["ratelimit"] = {**CACHES["default"], "BACKEND": "portal.cache.RateCounterCache"}
    # W001 names any backend outside django-ratelimit's list; RateCounterCache is its
    # supported django_redis RedisCache with add + incr fused.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]

AUTH_USER_MODEL = "portal.User"
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "portal:login"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env.str("STATICFILES_STORAGE", default="django.contrib.staticfiles.storage.StaticFilesStorage")
    },
}
#: Job results (reports, exports) live under MEDIA_ROOT/jobs/<job id>/, served only through the
#: permission-checked download view, never as static files.
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
#: A job's file is kept this long, then housekeeping deletes it (its figures stay).
JOB_FILE_TTL_HOURS = env.int("JOB_FILE_TTL_HOURS", default=7 * 24)
#: A download link is valid this long after it was handed out.
JOB_LINK_TTL_SECONDS = env.int("JOB_LINK_TTL_SECONDS", default=3600)

# WhiteNoise serves from the finders when no collectstatic ran (embedded mode).
WHITENOISE_USE_FINDERS = True

#: Largest request body accepted anywhere; larger bodies get 413.
MAX_REQUEST_BODY_BYTES = env.int("MAX_REQUEST_BODY_BYTES", default=1_048_576)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Tradeport <noreply@tradeport.local>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
#: The portal's address as users reach it, for links in emails.
PORTAL_URL = env.str("PORTAL_URL", default="http://127.0.0.1:8000")
#: A scheduled report's file is attached to its email up to this size; above it, the email links
#: to the portal's reports page instead.
REPORT_EMAIL_MAX_ATTACHMENT_BYTES = env.int("REPORT_EMAIL_MAX_ATTACHMENT_BYTES", default=10 * 1024 * 1024)
#: Addresses alerted with the operators (reconcile breaks), comma-separated.
OPERATOR_ALERT_EMAILS = env.list("OPERATOR_ALERT_EMAILS", default=[])

#: Embedded mode runs the beat schedule (and later the simulator) inside the ASGI process.
EMBEDDED_BACKGROUND = env.bool("EMBEDDED_BACKGROUND", default=True)

# Trading engine (trading, riskmgmt).
#: Price band (%) around the reference price where no risk limit sets one: limit prices beyond
#: it are refused (PRICE_BAND) and market orders never execute beyond it.
TRADING_DEFAULT_PRICE_BAND_PCT = env.float("TRADING_DEFAULT_PRICE_BAND_PCT", default=10.0)
#: How often a transaction that lost a deadlock or serialization race is retried before the
#: client sees an error.
TRADING_TRANSACTION_ATTEMPTS = env.int("TRADING_TRANSACTION_ATTEMPTS", default=8)
#: Orders for one instrument sent while its lock is held are matched together, in one
#: transaction, by the worker holding it (ADR 0005). Needs Redis and PostgreSQL. Off until
#: bench/order_placement shows it faster than one transaction per order (bench/README.md).
TRADING_COMBINE_ORDERS = env.bool("TRADING_COMBINE_ORDERS", default=False)
#: At most this many orders in one batch.
TRADING_COMBINE_MAX_BATCH = env.int("TRADING_COMBINE_MAX_BATCH", default=32)
#: How long a queued order's worker waits for its answer or a wake-up before it tries the lock again
#: (a safety net: the worker holding the lock wakes the next one).
TRADING_COMBINE_POLL_SECONDS = env.float("TRADING_COMBINE_POLL_SECONDS", default=0.05)
#: How long before a worker whose order was taken by another but not answered recovers it.
TRADING_COMBINE_WAIT_SECONDS = env.float("TRADING_COMBINE_WAIT_SECONDS", default=10.0)

# WebSocket streams (marketdata.consumers).
#: Streams one connection may subscribe to at once.
WS_MAX_STREAMS = env.int("WS_MAX_STREAMS", default=50)
#: Frames a client may send per second; beyond it, an error frame and close code 4029.
WS_MAX_MESSAGES_PER_SECOND = env.int("WS_MAX_MESSAGES_PER_SECOND", default=20)
#: How long, and for how many messages, a connection holds a message that came ahead of the
#: one it expects (two processes may publish in the other order than they committed).
WS_REORDER_WINDOW_MS = env.int("WS_REORDER_WINDOW_MS", default=1000)
WS_REORDER_WINDOW_MESSAGES = env.int("WS_REORDER_WINDOW_MESSAGES", default=64)
#: The most price levels a side of a book snapshot carries.
WS_BOOK_SNAPSHOT_LEVELS = env.int("WS_BOOK_SNAPSHOT_LEVELS", default=1000)
#: The ticker streams' update speed (per publishing process).
WS_TICKER_INTERVAL_MS = env.int("WS_TICKER_INTERVAL_MS", default=1000)

# Market simulator (marketdata.simulator): in the ASGI process when embedded, else `run_simulator`.
#: Start the simulator with the ASGI app in embedded mode.
SIMULATOR_ENABLED = env.bool("SIMULATOR_ENABLED", default=True)
#: Seconds between two steps (a reference price move, quotes kept, maybe a noise order).
SIMULATOR_STEP_SECONDS = env.float("SIMULATOR_STEP_SECONDS", default=1.0)
#: The reference price's random walk: yearly volatility and drift (a spot crypto pair's).
SIMULATOR_VOLATILITY = env.float("SIMULATOR_VOLATILITY", default=0.8)
SIMULATOR_DRIFT = env.float("SIMULATOR_DRIFT", default=0.0)
#: The market maker's ladder: levels per side, the distance between levels and from the
#: reference to the first level (basis points), and the first level's size in the quote asset.
SIMULATOR_MAKER_LEVELS = env.int("SIMULATOR_MAKER_LEVELS", default=10)
SIMULATOR_MAKER_STEP_BPS = env.float("SIMULATOR_MAKER_STEP_BPS", default=5.0)
SIMULATOR_MAKER_QUOTE_NOTIONAL = env.float("SIMULATOR_MAKER_QUOTE_NOTIONAL", default=3000.0)
#: The maker requotes when the reference moved this far from its ladder's centre (bps), or
#: when noise traders took half its levels.
SIMULATOR_MAKER_REQUOTE_BPS = env.float("SIMULATOR_MAKER_REQUOTE_BPS", default=10.0)
#: Noise traders' orders per minute and instrument, and their size in the quote asset.
SIMULATOR_NOISE_ORDERS_PER_MINUTE = env.float("SIMULATOR_NOISE_ORDERS_PER_MINUTE", default=20.0)
SIMULATOR_NOISE_NOTIONAL = env.float("SIMULATOR_NOISE_NOTIONAL", default=300.0)
