"""Reports on demand and on schedule (DESIGN §11, ADR 0007).

On demand: `report_submit` checks the request (kind, format, dates, the account is the user's,
audit reports are for operators) and queues a REPORT job; `report_execute` is its body: the
document is built in the job's scratch directory (`reports.documents`) and put in place when the
job succeeds.

On schedule: a `ReportSchedule` keeps its cadence as a django-celery-beat periodic task (operators
edit any schedule in the admin). Each firing runs `report_schedule_run` with the firing's task id
as `run_key`: the run's job is created once, built once, and each recipient is emailed once
(`EmailDelivery`), however often Celery retries or redelivers the firing.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import structlog
from celery.schedules import crontab
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from audit.services import audit_record
from portal.choices import JobKind, JobStatus, Role
from portal.errors import DomainError, NotFoundError
from portal.jobs import JobRun, job_create, job_execute, job_submit, job_succeed
from portal.models import Job, User
from reports.models import Cadence, EmailDelivery, ReportSchedule, ScheduledRun
from reports.specs import CONTENT_TYPES, ReportSpec, report_filename, report_spec_check
from trading.models import TradingAccount
from trading.selectors import account_get_visible

logger = structlog.get_logger("reports")

#: A report covers at most this many days.
MAX_REPORT_DAYS = 366
#: At most this many recipients per schedule.
MAX_RECIPIENTS = 20
#: The task each schedule's periodic task sends.
SCHEDULE_TASK = "reports.schedule_run"
ACCOUNT_REPORTS = ("statement", "blotter", "risk")


class ReportRefused(DomainError):
    status = 400


# -- on demand --------------------------------------------------------------------------------


def report_params(
    *, user: User, report: str, format: str, start: date, end: date, account_id: int | None
) -> tuple[dict[str, Any], TradingAccount | None]:
    """The checked parameters of a report over the whole days `start` to `end` (both included),
    and its account."""
    report_spec_check(
        ReportSpec(
            kind=report,
            format=format,
            start=_day_start(start),
            end=_day_start(end) + timedelta(days=1),
            account_id=None if report == "audit" else account_id,
            requested_by=user.get_username(),
        )
    )
    if (end - start).days + 1 > MAX_REPORT_DAYS:
        raise ReportRefused("range_too_long", f"A report covers at most {MAX_REPORT_DAYS} days.")
    account = None
    if report == "audit":
        if not user.has_role_at_least(Role.OPERATOR):
            raise DomainError("forbidden", "Audit reports are for operators.", status=403)
    else:
        assert account_id is not None  # report_spec_check refused an account report without one
        account = account_get_visible(user=user, account_id=account_id)
    params = {
        "report": report,
        "format": format,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "account": account.pk if account is not None else None,
    }
    return params, account


def report_submit(*, user: User, report: str, format: str, start: date, end: date, account_id: int | None) -> Job:
    params, account = report_params(
        user=user, report=report, format=format, start=start, end=end, account_id=account_id
    )
    return job_submit(kind=JobKind.REPORT, owner=user, params=params, account=account)


def report_execute(run: JobRun) -> None:
    """A REPORT job's body: build the document, then put it in place."""
    from reports.documents import report_build  # ReportLab and openpyxl load only where reports are built

    spec = _spec(run.job)
    path = run.scratch / report_filename(spec)
    outcome = report_build(spec, path, progress=lambda fraction, message: run.progress(2 + 96 * fraction, message))
    job_succeed(
        run.job,
        result={"rows": outcome.rows, "title": outcome.title, "report": spec.kind, "format": spec.format},
        file=path,
        name=path.name,
    )


def reports_visible_to(user: User) -> QuerySet[Job]:
    jobs = Job.objects.filter(kind=JobKind.REPORT).select_related("owner")
    return jobs if user.has_role_at_least(Role.OPERATOR) else jobs.filter(owner=user)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _spec(job: Job) -> ReportSpec:
    params = job.params
    start = _day_start(date.fromisoformat(params["start"]))
    end = _day_start(date.fromisoformat(params["end"])) + timedelta(days=1)
    return ReportSpec(
        kind=params["report"],
        format=params["format"],
        start=start,
        end=end,
        account_id=params["account"],
        requested_by=job.owner.get_username(),
    )


# -- schedules --------------------------------------------------------------------------------


def report_schedule_save(*, user: User, schedule: ReportSchedule | None = None, **fields: Any) -> ReportSchedule:
    """Create (`schedule` None) or change a schedule; its periodic task follows. The report it
    sends is checked as `report_submit` checks one, the cadence (a cron expression too) and the
    recipients before anything is written."""
    target = schedule or ReportSchedule(owner=user)
    creating = target.pk is None
    for name, value in fields.items():
        setattr(target, name, value)
    report_schedule_check(target)
    with transaction.atomic():
        target.save()
        _periodic_task_sync(target)
        audit_record(
            action="report_schedule.create" if creating else "report_schedule.update",
            target=target,
            after=_schedule_snapshot(target),
        )
    return target


def report_schedule_delete(*, schedule: ReportSchedule) -> None:
    with transaction.atomic():
        audit_record(action="report_schedule.delete", target=schedule, before=_schedule_snapshot(schedule))
        if schedule.periodic_task is not None:
            schedule.periodic_task.delete()
        schedule.delete()


def report_schedules_visible_to(user: User) -> QuerySet[ReportSchedule]:
    schedules = ReportSchedule.objects.select_related("owner", "account", "periodic_task__crontab")
    return schedules if user.has_role_at_least(Role.OPERATOR) else schedules.filter(owner=user)


def report_schedule_get_visible(*, user: User, schedule_id: int) -> ReportSchedule:
    schedule = report_schedules_visible_to(user).filter(pk=schedule_id).first()
    if schedule is None:
        raise NotFoundError("not_found", f"No report schedule #{schedule_id} among yours.")
    return schedule


def report_schedule_run(*, schedule_id: int, run_key: str) -> ScheduledRun | None:
    """One firing of a schedule: its report's job (created and built once per `run_key`), then
    one email per recipient not emailed yet. An email that fails raises (the task retries it)
    after the failure is recorded on the schedule; a report that fails is recorded, not retried."""
    schedule = ReportSchedule.objects.select_related("owner").filter(pk=schedule_id, enabled=True).first()
    if schedule is None:
        return None
    run = _scheduled_run(schedule, run_key)
    job_execute(str(run.job_id), report_execute)
    job = Job.objects.get(pk=run.job_id)
    if job.status != JobStatus.SUCCEEDED:
        _schedule_outcome(schedule, "failed", f"The report failed: {job.error or job.status}")
        return run
    for recipient in schedule.recipients:
        delivery, _ = EmailDelivery.objects.get_or_create(run=run, recipient=recipient)
        if delivery.sent_at is None:
            _deliver(schedule, job, delivery)
    _schedule_outcome(schedule, "sent", "")
    return run


def report_schedule_failed(*, schedule_id: int, error: str) -> None:
    """The firing gave up after its last retry: the schedule shows it."""
    schedule = ReportSchedule.objects.filter(pk=schedule_id).first()
    if schedule is not None:
        _schedule_outcome(schedule, "failed", error)


def _scheduled_run(schedule: ReportSchedule, run_key: str) -> ScheduledRun:
    with transaction.atomic():
        existing = ScheduledRun.objects.select_for_update().filter(run_key=run_key).first()
        if existing is not None:
            return existing
        params, account = _schedule_report_params(schedule)
        params["schedule"] = schedule.pk
        job = job_create(kind=JobKind.REPORT, owner=schedule.owner, params=params, account=account)
        schedule.last_run_at = timezone.now()
        schedule.save(update_fields=["last_run_at"])
        return ScheduledRun.objects.create(schedule=schedule, run_key=run_key, job=job)


def _schedule_report_params(schedule: ReportSchedule) -> tuple[dict[str, Any], TradingAccount | None]:
    """The checked report of a run today: the `period_days` whole days before today (UTC)."""
    today = timezone.now().astimezone(UTC).date()
    return report_params(
        user=schedule.owner,
        report=schedule.report,
        format=schedule.format,
        start=today - timedelta(days=schedule.period_days),
        end=today - timedelta(days=1),
        account_id=schedule.account_id,
    )


def _deliver(schedule: ReportSchedule, job: Job, delivery: EmailDelivery) -> None:
    path = Path(settings.MEDIA_ROOT) / job.result_file
    context = {
        "schedule": schedule,
        "job": job,
        "params": job.params,
        "result": job.result or {},
        "attached": job.result_size is not None and job.result_size <= settings.REPORT_EMAIL_MAX_ATTACHMENT_BYTES,
        "portal_url": settings.PORTAL_URL,
    }
    message = EmailMultiAlternatives(
        subject=f"[Tradeport] {schedule.name}: {job.params['report']} {job.params['start']} to {job.params['end']}",
        body=render_to_string("reports/email_report.txt", context),
        to=[delivery.recipient],
    )
    message.attach_alternative(render_to_string("reports/email_report.html", context), "text/html")
    if context["attached"]:
        message.attach(path.name, path.read_bytes(), CONTENT_TYPES[job.params["format"]])
    delivery.attempts += 1
    try:
        message.send(fail_silently=False)
    except Exception as error:
        delivery.error = f"{type(error).__name__}: {error}"[:2000]
        delivery.save(update_fields=["attempts", "error"])
        _schedule_outcome(schedule, "retrying", f"Email to {delivery.recipient} failed: {delivery.error}")
        raise
    delivery.sent_at, delivery.error = timezone.now(), ""
    delivery.save(update_fields=["attempts", "sent_at", "error"])
    logger.info("report_emailed", schedule=schedule.pk, job=str(job.pk), recipient=delivery.recipient)


def _schedule_outcome(schedule: ReportSchedule, status: str, error: str) -> None:
    failures = 0 if status == "sent" else schedule.consecutive_failures + (status == "failed")
    ReportSchedule.objects.filter(pk=schedule.pk).update(
        last_status=status, last_error=error[:4000], consecutive_failures=failures
    )


def report_schedule_check(schedule: ReportSchedule) -> None:
    """Refuse (ReportRefused, 400) a schedule whose report, cadence or recipients are unusable."""
    if not (schedule.name or "").strip():
        raise ReportRefused(
            "validation_error", "A schedule needs a name.", errors={"name": ["This field is required."]}
        )
    if not 1 <= schedule.period_days <= MAX_REPORT_DAYS:
        raise ReportRefused("bad_range", f"period_days must be between 1 and {MAX_REPORT_DAYS}.")
    _schedule_report_params(schedule)
    if schedule.cadence not in Cadence.values:
        raise ReportRefused("bad_cadence", f"cadence must be one of {', '.join(Cadence.values)}.")
    if schedule.cadence == Cadence.CRON:
        if len(schedule.cron.split()) != 5:
            raise ReportRefused("bad_cron", 'A cron expression has five fields: "minute hour day month weekday".')
    elif not (0 <= schedule.hour <= 23 and 0 <= schedule.minute <= 59 and 0 <= schedule.weekday <= 6):
        raise ReportRefused("bad_cadence", "hour is 0–23, minute 0–59, weekday 0 (Sunday) – 6.")
    minute, hour, day, month, weekday = schedule.crontab_fields
    try:
        crontab(minute=minute, hour=hour, day_of_month=day, month_of_year=month, day_of_week=weekday)
    except (ValueError, TypeError) as error:
        raise ReportRefused("bad_cron", f"Invalid cron expression {schedule.cron!r}: {error}") from error
    recipients = schedule.recipients
    if not isinstance(recipients, list) or not recipients or len(recipients) > MAX_RECIPIENTS:
        raise ReportRefused("bad_recipients", f"Give between 1 and {MAX_RECIPIENTS} email addresses.")
    for address in recipients:
        try:
            validate_email(address)
        except ValidationError as error:
            raise ReportRefused("bad_recipients", f"{address!r} is not an email address.") from error
    schedule.recipients = sorted(set(recipients))


def _periodic_task_sync(schedule: ReportSchedule) -> None:
    minute, hour, day, month, weekday = schedule.crontab_fields
    cron, _ = CrontabSchedule.objects.get_or_create(
        minute=minute, hour=hour, day_of_month=day, month_of_year=month, day_of_week=weekday, timezone="UTC"
    )
    task = schedule.periodic_task or PeriodicTask(name=f"report-schedule-{schedule.pk}", task=SCHEDULE_TASK)
    task.crontab = cron
    task.kwargs = json.dumps({"schedule_id": schedule.pk})
    task.enabled = schedule.enabled
    task.description = f"{schedule} of {schedule.owner.get_username()}"
    task.save()
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        schedule.save(update_fields=["periodic_task"])


def _schedule_snapshot(schedule: ReportSchedule) -> dict[str, Any]:
    return {
        "name": schedule.name,
        "report": schedule.report,
        "format": schedule.format,
        "account": schedule.account_id,
        "cadence": schedule.cadence,
        "crontab": " ".join(schedule.crontab_fields),
        "period_days": schedule.period_days,
        "recipients": schedule.recipients,
        "enabled": schedule.enabled,
    }
