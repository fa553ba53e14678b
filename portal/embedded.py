"""Embedded mode (DESIGN §3): the beat schedule runs inside the web process.

A daemon thread wakes every few seconds, finds the entries of BEAT_SCHEDULE that are due, and
the periodic tasks of the database that are (django-celery-beat's, which beat's database
scheduler reads in the full stack: report schedules), and hands them to the in-process job
pools (portal.jobs), just as beat would send them to a worker in the full stack.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime

import structlog
from celery.schedules import schedule as every
from django.db import close_old_connections
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from portal.beat_schedule import BEAT_SCHEDULE
from portal.celery import app
from portal.jobs import submit_embedded

logger = structlog.get_logger("portal.embedded")
_TICK_SECONDS = 5
_started = threading.Event()


def _due_entries(last_runs: dict[str, datetime]) -> list[str]:
    due = []
    for name, entry in BEAT_SCHEDULE.items():
        spec = entry["schedule"]
        spec = every(spec) if isinstance(spec, int | float) else spec
        is_due, _ = spec.is_due(last_runs[name])
        if is_due:
            due.append(name)
    return due


def _due_periodic_tasks(last_runs: dict[int, datetime], started: datetime) -> list[PeriodicTask]:
    """The database's enabled periodic tasks (not BEAT_SCHEDULE's) due since they last ran here,
    or since `started`."""
    tasks = PeriodicTask.objects.filter(enabled=True).exclude(name__in=BEAT_SCHEDULE)
    tasks = tasks.select_related("crontab", "interval", "solar", "clocked")
    return [task for task in tasks if task.schedule.is_due(last_runs.get(task.pk, started))[0]]


def _run_scheduler() -> None:
    # Every entry first runs one interval after start, like beat with a fresh schedule.
    started = timezone.now()
    last_runs = dict.fromkeys(BEAT_SCHEDULE, started)
    periodic_last_runs: dict[int, datetime] = {}
    while True:
        time.sleep(_TICK_SECONDS)
        for name in _due_entries(last_runs):
            last_runs[name] = timezone.now()
            task = app.tasks[BEAT_SCHEDULE[name]["task"]]
            submit_embedded(task, {}, request_id=f"schedule:{name}")
            logger.info("embedded_schedule_sent", entry=name)
        try:
            due = _due_periodic_tasks(periodic_last_runs, started)
        finally:
            close_old_connections()
        for periodic in due:
            periodic_last_runs[periodic.pk] = timezone.now()
            kwargs = json.loads(periodic.kwargs or "{}")
            submit_embedded(app.tasks[periodic.task], kwargs, request_id=f"schedule:{periodic.name}")
            logger.info("embedded_schedule_sent", entry=periodic.name)


def embedded_scheduler_start() -> None:
    """Start the in-process scheduler once per process."""
    if _started.is_set():
        return
    _started.set()
    app.loader.import_default_modules()
    threading.Thread(target=_run_scheduler, name="tradeport-schedule", daemon=True).start()
    logger.info("embedded_scheduler_started", entries=sorted(BEAT_SCHEDULE))
