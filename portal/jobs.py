"""Background jobs (DESIGN §9, ADR 0007): a `Job` row per job, its task enqueued after commit,
claimed by the worker that runs it, its progress published on the owner's `jobs` stream, its
result put in place only when it succeeds.

A task is at-least-once (acks_late, lost workers, visibility timeouts): `job_execute` makes a
second delivery harmless. It claims the row first (a finished job is left alone), the runner
writes its file under a temporary name, and `job_succeed` renames the file into place in the
step that commits SUCCEEDED, so a crashed or repeated run never leaves a partial or second
file that a user can download.

Embedded mode (no Redis) runs the tasks on in-process thread pools, one per queue, so a job
never blocks the request that started it and a long report never delays a VaR run.
"""

from __future__ import annotations

import os
import random
import shutil
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import structlog
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core import signing
from django.db import InterfaceError, OperationalError, connections, transaction
from django.db.models import QuerySet
from django.dispatch import Signal
from django.urls import reverse
from django.utils import timezone

from audit.context import audit_context_get
from audit.services import audit_record
from portal.choices import JOB_FINISHED, JobKind, JobStatus, Role
from portal.errors import ConflictError, DomainError, NotFoundError
from portal.models import Job, User
from portal.users import user_stream_next

logger = structlog.get_logger("portal.jobs")

#: Sent after a job's change commits, with `job` and the owner's `seq` of the `jobs` stream
#: (marketdata.streams publishes it).
job_changed = Signal()

#: The Celery task that runs each kind (the task names its queue in CELERY_TASK_ROUTES).
JOB_TASKS: dict[str, str] = {
    JobKind.VAR: "riskmgmt.var_run",
    JobKind.REPORT: "reports.report_build",
    JobKind.EXPORT: "reports.export_build",
    JobKind.RECONCILE: "trading.reconcile_job",
    JobKind.BACKTEST: "trading.backtest_run",
}
#: A job whose worker died this many times is failed instead of being claimed again (a job
#: that kills its worker must not kill every worker in turn).
JOB_MAX_ATTEMPTS = 3
#: The options of every job's task: acknowledged when done (a task whose worker died is run
#: again, and `job_claim` makes that harmless), retried only when the database went away, at
#: most 3 times, after 2, 4, 8 s with jitter.
JOB_TASK_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 3,
}


def retry_delay(retries: int, *, base: float = 60, cap: float = 900) -> float:
    """Seconds before retry number `retries` + 1: exponential from `base`, capped, with full jitter
    on the upper half (so retries of many tasks do not arrive together)."""
    delay = min(cap, base * 2**retries)
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not security


#: Progress is written and published at most this often (and only when the percent changes).
PROGRESS_INTERVAL_SECONDS = 0.5


class JobCanceled(Exception):
    """The job was canceled while it ran: the runner stops, nothing is kept."""


# -- enqueueing -------------------------------------------------------------------------------

_embedded_pools: dict[str, ThreadPoolExecutor] = {}


def _pool(queue: str) -> ThreadPoolExecutor:
    pool = _embedded_pools.get(queue)
    if pool is None:
        pool = _embedded_pools.setdefault(
            queue, ThreadPoolExecutor(max_workers=settings.EMBEDDED_JOB_THREADS, thread_name_prefix=f"job-{queue}")
        )
    return pool


def _run_embedded(task, kwargs: dict, request_id: str) -> None:
    try:
        task.apply(kwargs=kwargs, headers={"request_id": request_id})
    finally:
        # The pool's thread may wait long for its next job: it keeps no connection meanwhile.
        connections.close_all()


def submit_embedded(task, kwargs: dict, *, request_id: str) -> None:
    """Run `task` on the in-process pool of its queue now (embedded mode only)."""
    _pool(task_queue(task.name)).submit(_run_embedded, task, kwargs, request_id)


def task_queue(task_name: str) -> str:
    """The queue CELERY_TASK_ROUTES sends `task_name` to."""
    route = settings.CELERY_TASK_ROUTES.get(task_name) or {}
    return route.get("queue", settings.CELERY_TASK_DEFAULT_QUEUE)


def enqueue(task, **kwargs) -> None:
    """Send `task(**kwargs)` once the current transaction commits, with the request id attached."""
    request_id = audit_context_get().request_id

    def send() -> None:
        if settings.CELERY_EMBEDDED:
            submit_embedded(task, kwargs, request_id=request_id)
        else:
            task.apply_async(kwargs=kwargs, headers={"request_id": request_id})

    transaction.on_commit(send)


def _job_task(kind: str):
    from portal.celery import app

    app.loader.import_default_modules()
    return app.tasks[JOB_TASKS[kind]]


# -- the job's life ---------------------------------------------------------------------------


def job_submit(*, kind: str, owner: User, params: dict[str, Any], account=None) -> Job:
    """Write the job's row and enqueue its task after commit. `params` must be validated already
    (each kind's service does it, so a bad request is a 400 before anything is queued)."""
    with transaction.atomic():
        job = job_create(kind=kind, owner=owner, params=params, account=account)
        enqueue(_job_task(kind), job_id=str(job.pk))
    return job


def job_create(*, kind: str, owner: User, params: dict[str, Any], account=None) -> Job:
    """The job's row alone, for a task that runs the job itself (a scheduled report's run)."""
    with transaction.atomic():
        job = Job.objects.create(
            kind=kind, owner=owner, account=account, params=params, request_id=audit_context_get().request_id[:128]
        )
        _changed(job)
        audit_record(action="job.submit", target=job, after={"kind": kind, "params": params})
    return job


def job_claim(job_id: str) -> Job | None:
    """Take the job for this delivery of its task: RUNNING, one more attempt. None when there is
    nothing to do: the job finished (a redelivered task) or is gone."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status in JOB_FINISHED:
            return None
        if job.attempts >= JOB_MAX_ATTEMPTS:
            _finish(job, JobStatus.FAILED, error=f"Its worker stopped {job.attempts} times while running it.")
            return None
        job.status = JobStatus.RUNNING
        job.attempts += 1
        job.started_at = timezone.now()
        job.progress = 0
        job.save(update_fields=["status", "attempts", "started_at", "progress"])
        _changed(job)
        return job


@dataclass
class JobRun:
    """What a runner gets: its job, a progress reporter and a scratch directory whose files
    nobody can download until `job_succeed` puts one in place."""

    job: Job
    _last_percent: int = 0
    _last_at: float = field(default_factory=time.monotonic)

    def progress(self, percent: float, message: str = "") -> None:
        """Report `percent` done (0–100); raises JobCanceled when the owner canceled the job."""
        whole = max(0, min(99, int(percent)))
        now = time.monotonic()
        if whole == self._last_percent or now - self._last_at < PROGRESS_INTERVAL_SECONDS:
            return
        self._last_percent, self._last_at = whole, now
        job_progress(self.job, whole, message)

    @property
    def scratch(self) -> Path:
        path = job_directory(self.job) / ".partial"
        path.mkdir(parents=True, exist_ok=True)
        return path


def job_progress(job: Job, percent: int, message: str = "") -> None:
    """Store and publish a running job's progress; JobCanceled when it no longer runs."""
    with transaction.atomic():
        updated = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
            progress=percent, message=message[:255]
        )
        if not updated:
            raise JobCanceled(str(job.pk))
        job.progress, job.message = percent, message[:255]
        _changed(job)


def job_succeed(job: Job, *, result: dict[str, Any] | None = None, file: Path | None = None, name: str = "") -> Job:
    """Finish the job with its figures and its file (renamed from the scratch directory to
    `name`, under the job's directory). A job canceled meanwhile keeps nothing."""
    with transaction.atomic():
        current = Job.objects.select_for_update().get(pk=job.pk)
        if current.status != JobStatus.RUNNING:
            _scratch_remove(job)
            raise JobCanceled(str(job.pk))
        fields: dict[str, Any] = {"result": result}
        if file is not None:
            final = job_directory(job) / (name or file.name)
            os.replace(file, final)
            fields.update(
                result_file=str(final.relative_to(settings.MEDIA_ROOT)),
                result_size=final.stat().st_size,
                result_expires_at=timezone.now() + timedelta(hours=settings.JOB_FILE_TTL_HOURS),
            )
        _finish(current, JobStatus.SUCCEEDED, **fields)
    _scratch_remove(job)
    return current


def job_fail(job: Job, error: str) -> None:
    """Finish the job as FAILED with `error` (for its owner); nothing it wrote stays."""
    with transaction.atomic():
        current = Job.objects.select_for_update().get(pk=job.pk)
        if current.status not in JOB_FINISHED:
            _finish(current, JobStatus.FAILED, error=error)
    _scratch_remove(job)


def job_cancel(*, user: User, job_id: str) -> Job:
    """The owner (or an operator) cancels a job that has not finished; a running runner stops
    at its next progress report."""
    with transaction.atomic():
        job = jobs_visible_to(user).select_for_update().filter(pk=job_id).first()
        if job is None:
            raise NotFoundError("not_found", f"No job {job_id} among your jobs.")
        if job.status in JOB_FINISHED:
            raise ConflictError("job_finished", f"The job has finished ({job.status}).", extra={"status": job.status})
        _finish(job, JobStatus.CANCELED, actor=user)
    _scratch_remove(job)
    return job


def job_execute(job_id: str, runner: Callable[[JobRun], Job | None]) -> None:
    """Run a job's task body once per claim: `runner` does the work and calls `job_succeed`;
    any error fails the job with a message for its owner (a database gone away is raised
    instead, for the task's retry)."""
    job = job_claim(job_id)
    if job is None:
        logger.info("job_skipped", job=job_id)
        return
    run = JobRun(job)
    try:
        runner(run)
    except JobCanceled:
        logger.info("job_canceled", job=job_id)
        _scratch_remove(job)
    except SoftTimeLimitExceeded:
        job_fail(job, "It took longer than its time limit and was stopped.")
    except DomainError as refused:
        job_fail(job, refused.message)
    except (OperationalError, InterfaceError):
        raise  # the database went away: the task's retry claims the job again
    except Exception as error:  # noqa: BLE001 - any bug fails the job visibly, with the traceback logged
        logger.error("job_failed", job=job_id, kind=job.kind, error=repr(error), traceback=traceback.format_exc())
        job_fail(job, f"It failed: {type(error).__name__}: {error}"[:2000])


def _finish(job: Job, status: str, *, actor: Any = "jobs", **fields: Any) -> None:
    job.status = status
    job.finished_at = timezone.now()
    for name, value in fields.items():
        setattr(job, name, value)
    if status == JobStatus.SUCCEEDED:
        job.progress, job.message = 100, ""
    job.save()
    _changed(job)
    audit_record(
        action=f"job.{status}",
        actor=actor,
        target=job,
        after={"kind": job.kind, "error": job.error} if job.error else {"kind": job.kind},
    )


def _changed(job: Job) -> None:
    """Number the change in the owner's `jobs` stream and publish it after commit."""
    seq = user_stream_next(user_id=job.owner_id, stream="jobs")
    snapshot = Job(**{f.attname: getattr(job, f.attname) for f in Job._meta.concrete_fields})
    transaction.on_commit(lambda: job_changed.send(sender=Job, job=snapshot, seq=seq))


# -- files ------------------------------------------------------------------------------------


def _job_path(job: Job) -> Path:
    return Path(settings.MEDIA_ROOT) / "jobs" / str(job.pk)


def job_directory(job: Job) -> Path:
    path = _job_path(job)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _scratch_remove(job: Job) -> None:
    shutil.rmtree(_job_path(job) / ".partial", ignore_errors=True)


_DOWNLOAD_SALT = "tradeport.jobs.download"


def job_download_token(job: Job) -> str:
    """A token for the job's file, bound to the job and its owner, valid JOB_LINK_TTL_SECONDS."""
    return signing.TimestampSigner(salt=_DOWNLOAD_SALT).sign(f"{job.pk}:{job.owner_id}")


def job_download_path(job: Job) -> str | None:
    """The signed download link of the job's file (the path: the API makes it absolute), or None
    while there is no file to download. Whether the asker is the owner is the caller's check."""
    if job.status != JobStatus.SUCCEEDED or not job.file_available:
        return None
    path = reverse("v1:job-download", kwargs={"pk": job.pk})
    return f"{path}?{urlencode({'token': job_download_token(job)})}"


class LinkExpired(DomainError):
    status = 410


def job_file_for_download(*, user: User, job_id: str, token: str) -> Job:
    """The job whose file `user` may download with `token`: 404 when the job is not the user's
    own or the token is not for it (ids of others are not confirmed), 410 when the link or the
    file has expired."""
    job = Job.objects.filter(pk=job_id, owner=user).first() if _is_uuid(job_id) else None
    signer = signing.TimestampSigner(salt=_DOWNLOAD_SALT)
    try:
        signed_for = signer.unsign(token)
    except signing.BadSignature:
        signed_for = None
    if job is None or signed_for != f"{job.pk}:{job.owner_id}":
        raise NotFoundError("not_found", f"No file for job {job_id} among your jobs.")
    try:
        signer.unsign(token, max_age=settings.JOB_LINK_TTL_SECONDS)
    except signing.SignatureExpired as expired:
        raise LinkExpired("link_expired", "This download link has expired: ask for the job again.") from expired
    if job.status != JobStatus.SUCCEEDED or not job.result_file:
        raise NotFoundError("not_found", f"Job {job_id} has no file.")
    if not job.file_available:
        raise LinkExpired("file_expired", "The file of this job has expired and was deleted: run it again.")
    return job


def job_files_expire(*, now=None) -> int:
    """Delete the files whose time is over (the job keeps its figures); returns how many."""
    now = now or timezone.now()
    expired = Job.objects.filter(result_expires_at__lte=now).exclude(result_file="")
    count = 0
    for job in expired.iterator():
        shutil.rmtree(_job_path(job), ignore_errors=True)
        Job.objects.filter(pk=job.pk).update(result_file="")
        count += 1
    return count


def jobs_stuck_fail(*, now=None) -> int:
    """Fail the jobs that have been RUNNING longer than any worker may run them (a hard time
    limit plus the broker's visibility timeout): their worker is gone for good."""
    now = now or timezone.now()
    horizon = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + settings.CELERY_VISIBILITY_TIMEOUT)
    count = 0
    for job in Job.objects.filter(status=JobStatus.RUNNING, started_at__lt=horizon):
        job_fail(job, "Its worker stopped and it was not run again in time.")
        count += 1
    return count


# -- reads ------------------------------------------------------------------------------------


def jobs_visible_to(user: User) -> QuerySet[Job]:
    """A user's own jobs; operators see everyone's."""
    jobs = Job.objects.select_related("owner")
    return jobs if user.has_role_at_least(Role.OPERATOR) else jobs.filter(owner=user)


def job_get_visible(*, user: User, job_id: str) -> Job:
    job = jobs_visible_to(user).filter(pk=job_id).first() if _is_uuid(job_id) else None
    if job is None:
        raise NotFoundError("not_found", f"No job {job_id} among your jobs.")
    return job


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
