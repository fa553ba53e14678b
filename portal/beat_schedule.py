"""Every periodic job of Tradeport, in one place (django-celery-beat loads it into the admin)."""

from celery.schedules import crontab

BEAT_SCHEDULE = {
    "heartbeat": {
        "task": "portal.heartbeat",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
    "idempotency-purge": {
        "task": "portal.idempotency_purge",
        "schedule": crontab(minute=17),
        "options": {"expires": 3000},
    },
    "jobs-housekeeping": {
        "task": "portal.jobs_housekeeping",
        "schedule": crontab(minute="*/15"),
        "options": {"expires": 600},
    },
    "trading-reconcile": {
        "task": "trading.reconcile",
        "schedule": crontab(minute=29),
        "options": {"expires": 3000},
    },
    "api-keys-purge": {
        "task": "portal.api_keys_purge",
        "schedule": crontab(hour=3, minute=41),
        "options": {"expires": 3600},
    },
}
