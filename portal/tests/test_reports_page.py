"""The portal's reports page without a browser: generate and download, exports, schedules, errors."""

from __future__ import annotations

import html
import re

import pytest
from django.utils import timezone

from conftest import TEST_PASSWORD
from portal.choices import Role
from portal.models import Job
from reports.models import ReportSchedule

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(funded_account, client):
    account = funded_account("alice", USDT="1000")
    assert client.login(username="alice", password=TEST_PASSWORD)
    return account


def today() -> str:
    return timezone.now().date().isoformat()


def test_a_generated_report_appears_with_its_download_link(alice, client, jobs_inline):
    with jobs_inline():
        response = client.post(
            "/reports/",
            {
                "form": "report",
                "report-report": "statement",
                "report-format": "csv",
                "report-start": today(),
                "report-end": today(),
            },
        )
    assert response.status_code == 302
    page = client.get("/reports/").content.decode()
    job = Job.objects.get()
    assert job.params["account"] == alice.pk and f"/api/v1/jobs/{job.pk}/download?token=" in page
    (link,) = re.findall(r'href="([^"]+download\?token=[^"]+)"', page)
    download = client.get(html.unescape(link))
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith('attachment; filename="statement-')
    assert b"".join(download.streaming_content).splitlines()[0].startswith(b"executed_at,")


def test_a_report_ending_before_it_starts_is_a_form_error(alice, client):
    response = client.post(
        "/reports/",
        {
            "form": "report",
            "report-report": "blotter",
            "report-format": "pdf",
            "report-start": today(),
            "report-end": "2020-01-01",
        },
    )
    assert response.status_code == 422 and "bad_range" in response.content.decode()
    assert not Job.objects.exists()


def test_an_export_is_queued_from_the_page(alice, client, jobs_inline):
    with jobs_inline():
        response = client.post("/reports/", {"form": "export", "export-dataset": "orders", "export-format": "ndjson"})
    assert response.status_code == 302
    job = Job.objects.get()
    assert job.kind == "export" and job.status == "succeeded" and job.params["account"] == alice.pk


def test_schedules_are_created_paused_and_deleted_and_a_bad_cron_is_a_form_error(alice, client):
    schedule = {
        "form": "schedule",
        "schedule-name": "Weekly",
        "schedule-report": "blotter",
        "schedule-format": "xlsx",
        "schedule-period_days": "7",
        "schedule-cadence": "cron",
        "schedule-hour": "6",
        "schedule-minute": "0",
        "schedule-weekday": "1",
        "schedule-cron": "0 25 * * *",
        "schedule-recipients": "a@example.com",
    }
    refused = client.post("/reports/", schedule)
    assert refused.status_code == 422 and "bad_cron" in refused.content.decode()
    assert client.post("/reports/", {**schedule, "schedule-cron": "0 6 * * 1"}).status_code == 302
    created = ReportSchedule.objects.get()
    assert created.account_id == alice.pk and created.recipients == ["a@example.com"]
    assert "0 6 * * 1" in client.get("/reports/").content.decode()
    client.post(f"/reports/schedules/{created.pk}/toggle/")
    created.refresh_from_db()
    assert created.enabled is False and created.periodic_task.enabled is False
    client.post(f"/reports/schedules/{created.pk}/delete/")
    assert not ReportSchedule.objects.exists()


def test_only_operators_are_offered_the_audit_report(alice, client, make_user):
    assert "Audit report" not in client.get("/reports/").content.decode()
    make_user("olga", role=Role.OPERATOR)
    client.logout()
    assert client.login(username="olga", password=TEST_PASSWORD)
    assert "Audit report" in client.get("/reports/").content.decode()


def test_someone_elses_schedule_cannot_be_deleted(alice, client, make_user):
    from reports.services import report_schedule_save

    other = make_user("bob")
    from trading.services import account_create

    account = account_create(owner=other, venue=alice.venue, name="Bob", actor="test")
    schedule = report_schedule_save(
        user=other, name="Bob's", report="blotter", format="csv", account=account, recipients=["b@example.com"]
    )
    assert client.post(f"/reports/schedules/{schedule.pk}/delete/").status_code == 404
    assert ReportSchedule.objects.filter(pk=schedule.pk).exists()
