"""Celery: Redis broker in the full stack; in-process execution when embedded (ADR 0007)."""

from .base import EMBEDDED, REDIS_URL, TIME_ZONE, env

# https://docs.celeryq.dev/en/stable/userguide/configuration.html
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
#: Results live in the Job rows; the backend only serves `AsyncResult` to whoever asks (ops).
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL or None) or None
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
#: The longest any task may run (reports and exports; each task may set less).
CELERY_TASK_TIME_LIMIT = 31 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 30 * 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
#: A task not acknowledged within this is delivered again: longer than the longest hard time
#: limit and than any countdown or retry delay, the same for the broker and the result backend.
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=2 * 3600)
#: The tasks of a dead worker are looked for every 10 s (kombu scans only every 10th time by
#: default: one came back 100 s after its visibility timeout).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
#: Queues by kind of work, so a long report never delays a VaR run: compose runs a worker per
#: group (`risk`; `reports,exports`; `default`), `make worker` one for all.
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "riskmgmt.var_run": {"queue": "risk"},
    "trading.backtest_run": {"queue": "risk"},
    "reports.report_build": {"queue": "reports"},
    "reports.schedule_run": {"queue": "reports"},
    "reports.export_build": {"queue": "exports"},
}
CELERY_QUEUES_ALL = "risk,reports,exports,default"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
#: Embedded mode runs jobs on a thread pool inside the web process (portal.jobs).
CELERY_EMBEDDED = EMBEDDED
#: Threads of each queue's in-process pool in embedded mode.
EMBEDDED_JOB_THREADS = env.int("EMBEDDED_JOB_THREADS", default=2)

from portal.beat_schedule import BEAT_SCHEDULE as CELERY_BEAT_SCHEDULE  # noqa: E402,F401
