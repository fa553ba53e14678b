"""Embedded mode: jobs run in-process after commit, and the beat schedule runs without beat."""

import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from portal import tasks
from portal.beat_schedule import BEAT_SCHEDULE
from portal.embedded import _due_entries
from portal.jobs import enqueue

pytestmark = pytest.mark.django_db(transaction=True)


def test_enqueued_job_runs_in_process_only_after_commit(settings):
    settings.CELERY_EMBEDDED = True

    def heartbeat_seen(timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cache.get("heartbeat:worker") is not None:
                return True
            time.sleep(0.05)
        return False

    with transaction.atomic():
        enqueue(tasks.heartbeat)
        assert not heartbeat_seen(0.3), "the job must wait for the commit"
    assert heartbeat_seen(10)


def test_schedule_entries_fall_due_after_their_interval():
    now = timezone.now()
    fresh = dict.fromkeys(BEAT_SCHEDULE, now)
    assert _due_entries(fresh) == []
    stale = {**fresh, "heartbeat": now - timedelta(seconds=31)}
    assert _due_entries(stale) == ["heartbeat"]


def test_a_job_run_in_process_leaves_no_audit_context_behind():
    from audit.context import audit_context_get

    before = audit_context_get()
    tasks.heartbeat.apply()  # runs here, in this thread, with its task signals
    assert audit_context_get() == before


def test_the_databases_periodic_tasks_fall_due_without_beat():
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    from portal.embedded import _due_periodic_tasks

    every_minute = CrontabSchedule.objects.create(minute="*", hour="*", timezone="UTC")
    task = PeriodicTask.objects.create(name="report-schedule-1", task="reports.schedule_run", crontab=every_minute)
    now = timezone.now()
    assert _due_periodic_tasks({}, now) == []
    assert _due_periodic_tasks({}, now - timedelta(minutes=2)) == [task]
    assert _due_periodic_tasks({task.pk: now}, now - timedelta(minutes=2)) == []
    PeriodicTask.objects.filter(pk=task.pk).update(enabled=False)
    assert _due_periodic_tasks({}, now - timedelta(minutes=2)) == []
