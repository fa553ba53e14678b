"""Report schedules and their runs (DESIGN §11, ADR 0007): a schedule emails a report to its
recipients on a cadence (daily, weekly or a cron expression) kept as a django-celery-beat
periodic task, so operators can edit any schedule in the admin; each run is one job and one
email per recipient, recorded so that a retried run never emails anyone twice."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_celery_beat.models import PeriodicTask


class Cadence(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    CRON = "cron", "Cron expression"


class ReportSchedule(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="report_schedules")
    name = models.CharField(max_length=100)
    report = models.CharField(max_length=16, help_text="statement, blotter, risk or audit.")
    format = models.CharField(max_length=8, help_text="pdf, csv or xlsx.")
    account = models.ForeignKey(
        "trading.TradingAccount", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    period_days = models.PositiveSmallIntegerField(
        default=1, help_text="Each run reports on the whole days before the day it runs, this many of them."
    )
    cadence = models.CharField(max_length=8, choices=Cadence.choices, default=Cadence.DAILY)
    hour = models.PositiveSmallIntegerField(default=6, help_text="UTC, for daily and weekly.")
    minute = models.PositiveSmallIntegerField(default=0)
    weekday = models.PositiveSmallIntegerField(default=1, help_text="0 = Sunday … 6 = Saturday, for weekly.")
    cron = models.CharField(
        max_length=100, blank=True, help_text='Five fields, UTC: "minute hour day-of-month month day-of-week".'
    )
    recipients = models.JSONField(default=list, help_text="Email addresses.")
    enabled = models.BooleanField(default=True)
    periodic_task = models.OneToOneField(
        PeriodicTask, null=True, blank=True, on_delete=models.SET_NULL, related_name="report_schedule", editable=False
    )
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_status = models.CharField(max_length=16, blank=True, editable=False, help_text="sent, retrying or failed.")
    last_error = models.TextField(blank=True, editable=False)
    consecutive_failures = models.PositiveSmallIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["owner_id", "name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.report} {self.format}, {self.get_cadence_display().lower()})"

    @property
    def crontab_fields(self) -> tuple[str, str, str, str, str]:
        """(minute, hour, day of month, month, day of week) of the cadence."""
        if self.cadence == Cadence.CRON:
            minute, hour, day, month, weekday = self.cron.split()
            return minute, hour, day, month, weekday
        weekday = str(self.weekday) if self.cadence == Cadence.WEEKLY else "*"
        return str(self.minute), str(self.hour), "*", "*", weekday


class ScheduledRun(models.Model):
    """One firing of a schedule: `run_key` is the Celery task id of that firing (the same across
    its retries and redeliveries), so the run's job and emails exist once."""

    schedule = models.ForeignKey(ReportSchedule, on_delete=models.CASCADE, related_name="runs")
    run_key = models.CharField(max_length=64, unique=True)
    job = models.OneToOneField("portal.Job", on_delete=models.PROTECT, related_name="scheduled_run")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.schedule} run {self.run_key}"


class EmailDelivery(models.Model):
    """The report of one run, to one recipient: written before the send and marked after it, so
    a retry sends only what was not sent."""

    run = models.ForeignKey(ScheduledRun, on_delete=models.CASCADE, related_name="deliveries")
    recipient = models.EmailField()
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "recipient"], name="one_email_per_run_and_recipient")]

    def __str__(self) -> str:
        return f"{self.recipient}: {'sent' if self.sent_at else 'pending'}"
