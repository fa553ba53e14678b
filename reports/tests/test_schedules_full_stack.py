"""A report schedule on the full stack: Celery beat (the database scheduler) fires it, a real
worker on the reports queue builds the report and emails it through a real SMTP server."""

from __future__ import annotations

import pytest

from portal.redis_client import redis_client
from portal.tests.servers import CeleryBeat, CeleryWorker, full_stack_required
from portal.tests.test_celery_worker import QUEUES
from reports.models import EmailDelivery, ScheduledRun
from reports.services import report_schedule_save

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def clean_queues():
    full_stack_required()
    redis = redis_client()
    redis.delete(*QUEUES, "unacked", "unacked_index")
    yield
    redis.delete(*QUEUES, "unacked", "unacked_index")


def test_beat_fires_a_schedule_and_the_worker_emails_the_report(
    funded_account, smtp_server, settings, tmp_path, clean_queues
):
    account = funded_account("alice", USDT="100")
    report_schedule_save(
        user=account.owner,
        name="Every minute",
        report="statement",
        format="csv",
        account=account,
        cadence="cron",
        cron="* * * * *",
        recipients=["alice@example.com"],
    )
    mail = {"EMAIL_URL": f"smtp://{settings.EMAIL_HOST}:{settings.EMAIL_PORT}"}
    worker = CeleryWorker(tmp_path / "worker.log", queues="reports", env=mail).start()
    beat = CeleryBeat(tmp_path / "beat.log").start()
    try:
        (message,) = smtp_server.wait_for(1, timeout=90)
    finally:
        beat.stop()
        worker.stop()
    assert message.envelope_recipients == ["alice@example.com"]
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename().startswith(f"statement-{account.pk}-")
    run = ScheduledRun.objects.get()
    assert run.job.status == "succeeded"
    assert EmailDelivery.objects.get(run=run).sent_at is not None
