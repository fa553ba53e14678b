"""Celery entry points of reports (queues `reports` and `exports`): each runs one job through
`portal.jobs.job_execute`; a schedule's firing builds its report and emails it."""

from smtplib import SMTPException

from celery import shared_task
from django.db import InterfaceError, OperationalError

from portal.jobs import JOB_TASK_OPTIONS, job_execute, retry_delay
from reports.exports import export_execute
from reports.services import report_execute, report_schedule_failed, report_schedule_run


@shared_task(name="reports.export_build", soft_time_limit=30 * 60, time_limit=31 * 60, **JOB_TASK_OPTIONS)
def export_build(job_id: str) -> None:
    job_execute(job_id, export_execute)


@shared_task(name="reports.report_build", soft_time_limit=30 * 60, time_limit=31 * 60, **JOB_TASK_OPTIONS)
def report_build(job_id: str) -> None:
    job_execute(job_id, report_execute)


@shared_task(
    bind=True,
    name="reports.schedule_run",
    soft_time_limit=30 * 60,
    time_limit=31 * 60,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=3,
)
def schedule_run(self, schedule_id: int) -> None:
    """One firing of a report schedule (sent by beat). Its task id names the run, so a retry or a
    redelivery emails nobody twice; a failed email is retried after 60, 120, 240 s (with jitter),
    then the schedule shows the failure."""
    try:
        report_schedule_run(schedule_id=schedule_id, run_key=self.request.id)
    except (OSError, SMTPException, OperationalError, InterfaceError) as error:
        if self.request.retries >= self.max_retries:
            report_schedule_failed(schedule_id=schedule_id, error=f"Gave up after {self.max_retries} retries: {error}")
            raise
        raise self.retry(exc=error, countdown=retry_delay(self.request.retries)) from error
