"""Jobs on a real Celery worker against this Redis and the test database: routed to their queue,
run once even when the worker is killed in the middle of one and another takes over (ADR 0007)."""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from audit.models import AuditEvent
from portal.choices import JobStatus
from portal.models import Job
from portal.redis_client import redis_client
from portal.tests.servers import CeleryWorker, full_stack_required
from riskmgmt.models import VarRun
from riskmgmt.tests.test_var_runs import holder  # noqa: F401 - fixture
from riskmgmt.var_runs import var_run_submit

pytestmark = pytest.mark.django_db(transaction=True)

QUEUES = ("risk", "reports", "exports", "default")


@pytest.fixture
def broker_queues(settings):
    """Empty queues on the broker, and jobs sent there (not run in this process)."""
    full_stack_required()
    settings.CELERY_EMBEDDED = False
    redis = redis_client()
    redis.delete(*QUEUES, "unacked", "unacked_index")
    yield redis
    redis.delete(*QUEUES, "unacked", "unacked_index")


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def submit_long_var(alice) -> VarRun:
    return var_run_submit(
        user=alice.owner,
        account_id=alice.pk,
        method="monte_carlo",
        confidence=0.99,
        horizon_days=1,
        lookback_days=250,
        paths=10_000_000,
        seed=11,
    )


def test_a_var_run_goes_to_the_risk_queue_only_after_commit(holder, broker_queues):  # noqa: F811
    alice, _ = holder
    submit_long_var(alice)
    assert broker_queues.llen("risk") == 1
    assert sum(broker_queues.llen(queue) for queue in QUEUES) == 1


def test_a_job_whose_worker_is_killed_mid_task_completes_once_on_the_next_worker(
    holder,  # noqa: F811
    broker_queues,
    tmp_path,
):
    alice, _ = holder
    # The broker hands an unacknowledged task to another worker after the visibility timeout.
    quick_redelivery = {"CELERY_VISIBILITY_TIMEOUT": "3"}
    first = CeleryWorker(tmp_path / "worker-1.log", queues="risk", env=quick_redelivery).start()
    try:
        run = submit_long_var(alice)
        wait_for(lambda: Job.objects.filter(pk=run.job_id, status=JobStatus.RUNNING).exists(), 60, "the claim")
        first.kill()
    finally:
        first.stop()
    job = Job.objects.get(pk=run.job_id)
    assert job.status == JobStatus.RUNNING and job.attempts == 1

    second = CeleryWorker(tmp_path / "worker-2.log", queues="risk", env=quick_redelivery).start()
    try:
        job = wait_for(
            lambda: Job.objects.filter(pk=run.job_id).exclude(status=JobStatus.RUNNING).first(), 120, "the job's end"
        )
        time.sleep(4)  # past another visibility timeout: nothing runs it a third time
    finally:
        second.stop()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 2
    assert VarRun.objects.get(pk=run.pk).var is not None
    assert AuditEvent.objects.filter(action="job.succeeded", target_id=str(job.pk)).count() == 1
    assert broker_queues.llen("risk") == 0 and not broker_queues.hlen("unacked")
    assert settings.CELERY_TASK_ROUTES["riskmgmt.var_run"] == {"queue": "risk"}
