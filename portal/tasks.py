"""Celery entry points of identity & access and of the platform; each calls one service."""

from celery import shared_task

from portal.api_keys import api_keys_purge_expired
from portal.health import heartbeat_beat
from portal.idempotency import idempotency_purge_expired
from portal.jobs import job_files_expire, jobs_stuck_fail


@shared_task(name="portal.heartbeat", ignore_result=True, time_limit=10, max_retries=0)
def heartbeat() -> None:
    """Sent only by beat and run by a worker, so its arrival proves both are alive."""
    heartbeat_beat("worker")
    heartbeat_beat("beat")


@shared_task(
    name="portal.idempotency_purge", time_limit=300, autoretry_for=(Exception,), retry_backoff=True, max_retries=3
)
def idempotency_purge() -> int:
    return idempotency_purge_expired()


@shared_task(
    name="portal.api_keys_purge", time_limit=300, autoretry_for=(Exception,), retry_backoff=True, max_retries=3
)
def api_keys_purge() -> int:
    return api_keys_purge_expired()


@shared_task(
    name="portal.jobs_housekeeping", time_limit=600, autoretry_for=(Exception,), retry_backoff=True, max_retries=3
)
def jobs_housekeeping() -> dict[str, int]:
    """Delete the job files whose time is over; fail the jobs whose worker is gone for good."""
    return {"files_expired": job_files_expire(), "stuck_failed": jobs_stuck_fail()}
