"""Celery entry points of risk (queue `risk`): each runs one job through `portal.jobs.job_execute`."""

from celery import shared_task

from portal.jobs import JOB_TASK_OPTIONS, job_execute
from riskmgmt.var_runs import var_run_execute


@shared_task(name="riskmgmt.var_run", soft_time_limit=120, time_limit=150, **JOB_TASK_OPTIONS)
def var_run(job_id: str) -> None:
    job_execute(job_id, var_run_execute)
