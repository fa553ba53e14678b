"""Report schedules: kept as django-celery-beat periodic tasks, checked before they are saved, and
each firing emails every recipient once, with the report attached, through a real SMTP server."""

from __future__ import annotations

import csv
import io
import json
import socket

import pytest
from django_celery_beat.models import PeriodicTask

from portal.choices import JobStatus, Role
from portal.errors import DomainError
from reports.models import EmailDelivery, ReportSchedule, ScheduledRun
from reports.services import report_schedule_delete, report_schedule_run, report_schedule_save

pytestmark = pytest.mark.django_db


@pytest.fixture
def trader_account(funded_account, place, market):
    alice = funded_account("alice", USDT="1000")
    bob = funded_account("bob", BTC="5")
    place(bob, "SELL", qty="1", price="100")
    place(alice, "BUY", qty="1", price="100")
    return alice


def schedule_for(account, **fields) -> ReportSchedule:
    values = {
        "name": "Daily blotter",
        "report": "blotter",
        "format": "csv",
        "account": account,
        "period_days": 2,
        "cadence": "daily",
        "hour": 6,
        "minute": 30,
        "recipients": ["alice@example.com", "desk@example.com"],
        **fields,
    }
    return report_schedule_save(user=account.owner, **values)


def test_a_schedule_is_a_periodic_task_that_follows_its_cadence(trader_account):
    schedule = schedule_for(trader_account)
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert task.task == "reports.schedule_run" and json.loads(task.kwargs) == {"schedule_id": schedule.pk}
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("30", "6", "*")
    report_schedule_save(user=trader_account.owner, schedule=schedule, cadence="cron", cron="*/15 8-17 * * 1-5")
    task.refresh_from_db()
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("*/15", "8-17", "1-5")
    report_schedule_save(user=trader_account.owner, schedule=schedule, enabled=False)
    task.refresh_from_db()
    assert task.enabled is False
    report_schedule_delete(schedule=schedule)
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"cadence": "cron", "cron": "61 * * * *"}, "bad_cron"),
        ({"cadence": "cron", "cron": "* * *"}, "bad_cron"),
        ({"cadence": "cron", "cron": "0 9 * * funday"}, "bad_cron"),
        ({"hour": 24}, "bad_cadence"),
        ({"recipients": ["not an address"]}, "bad_recipients"),
        ({"recipients": []}, "bad_recipients"),
        ({"format": "docx"}, "unknown_format"),
        ({"report": "horoscope"}, "unknown_report"),
        ({"report": "audit"}, "forbidden"),
        ({"period_days": 0}, "bad_range"),
    ],
)
def test_a_bad_schedule_is_refused_and_nothing_is_written(trader_account, fields, code):
    with pytest.raises(DomainError) as refused:
        schedule_for(trader_account, **fields)
    assert refused.value.code == code
    assert not ReportSchedule.objects.exists() and not PeriodicTask.objects.filter(task="reports.schedule_run").exists()


def test_a_firing_emails_each_recipient_once_with_the_report_attached(trader_account, smtp_server):
    schedule = schedule_for(trader_account)
    run = report_schedule_run(schedule_id=schedule.pk, run_key="firing-1")
    report_schedule_run(schedule_id=schedule.pk, run_key="firing-1")  # Celery delivered the firing again
    messages = smtp_server.wait_for(2)
    assert sorted(m.envelope_recipients[0] for m in messages) == ["alice@example.com", "desk@example.com"]
    assert len(smtp_server.wait_for(3, timeout=0.5)) == 2
    message = messages[0]
    assert message["Subject"].startswith("[Tradeport] Daily blotter: blotter")
    assert "ready" in message.get_body(preferencelist=("plain",)).get_content()
    assert "<h1>Daily blotter</h1>" in message.get_body(preferencelist=("html",)).get_content()
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "text/csv"
    rows = list(csv.reader(io.StringIO(attachment.get_content())))
    assert len(rows) == 1 and rows[0][0] == "executed_at"  # the header: today's trade is not in the two days before
    run.job.refresh_from_db()
    assert ScheduledRun.objects.count() == 1 and run.job.status == JobStatus.SUCCEEDED
    assert EmailDelivery.objects.filter(run=run, sent_at__isnull=False).count() == 2
    schedule.refresh_from_db()
    assert schedule.last_status == "sent" and schedule.last_run_at is not None


def test_a_failed_email_is_shown_on_the_schedule_and_a_retry_sends_only_what_was_not_sent(
    trader_account, smtp_server, settings
):
    schedule = schedule_for(trader_account, recipients=["alice@example.com"])
    working_port = settings.EMAIL_PORT
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = closed.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(OSError):
        report_schedule_run(schedule_id=schedule.pk, run_key="firing-2")
    schedule.refresh_from_db()
    assert schedule.last_status == "retrying" and "alice@example.com" in schedule.last_error
    delivery = EmailDelivery.objects.get()
    assert delivery.sent_at is None and delivery.attempts == 1

    settings.EMAIL_PORT = working_port
    report_schedule_run(schedule_id=schedule.pk, run_key="firing-2")  # the task's retry
    assert len(smtp_server.wait_for(1)) == 1
    delivery.refresh_from_db()
    assert delivery.sent_at is not None and delivery.attempts == 2
    schedule.refresh_from_db()
    assert schedule.last_status == "sent" and schedule.last_error == "" and schedule.consecutive_failures == 0


def test_operators_may_schedule_audit_reports(make_user, smtp_server):
    olga = make_user("olga", role=Role.OPERATOR)
    schedule = report_schedule_save(
        user=olga,
        name="Audit",
        report="audit",
        format="xlsx",
        cadence="weekly",
        weekday=1,
        recipients=["o@example.com"],
    )
    report_schedule_run(schedule_id=schedule.pk, run_key="firing-3")
    (message,) = smtp_server.wait_for(1)
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename().endswith(".xlsx")
