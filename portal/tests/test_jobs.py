"""Jobs as rows (ADR 0007): a redelivered task does nothing twice, a crash leaves no file, files
behind signed expiring links (404 to others, 410 once expired), cancel, housekeeping."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from portal.choices import JobKind, JobStatus, Role
from portal.jobs import (
    JOB_MAX_ATTEMPTS,
    JobRun,
    job_claim,
    job_execute,
    job_files_expire,
    job_succeed,
    jobs_stuck_fail,
)
from portal.models import Job

pytestmark = pytest.mark.django_db


def queued(owner, kind=JobKind.EXPORT) -> Job:
    """A job as `job_submit` leaves it, without sending its task (the tests run it here)."""
    return Job.objects.create(kind=kind, owner=owner, params={"dataset": "test"})


def write_file(run: JobRun, text: str = "a,b\n1,2\n") -> Path:
    path = run.scratch / "out.csv"
    path.write_text(text)
    return path


def succeed_with_file(run: JobRun) -> None:
    run.progress(50)
    job_succeed(run.job, result={"rows": 1}, file=write_file(run), name="export.csv")


def test_a_task_delivered_twice_does_the_work_once(trader):
    job = queued(trader)
    calls = []

    def runner(run: JobRun) -> None:
        calls.append(run.job.attempts)
        succeed_with_file(run)

    job_execute(str(job.pk), runner)
    job_execute(str(job.pk), runner)  # the broker delivered it again
    job.refresh_from_db()
    assert calls == [1] and job.status == JobStatus.SUCCEEDED and job.progress == 100
    assert sorted(path.name for path in job_dir(job).iterdir()) == ["export.csv"]
    assert job.result_file == f"jobs/{job.pk}/export.csv" and job.result_size == len("a,b\n1,2\n")


def test_a_job_whose_worker_died_is_claimed_again_and_failed_after_its_last_attempt(trader):
    job = queued(trader)
    for attempt in range(1, JOB_MAX_ATTEMPTS + 1):
        claimed = job_claim(str(job.pk))  # each claim stands for a worker that died mid-task
        assert claimed is not None and claimed.attempts == attempt
    assert job_claim(str(job.pk)) is None
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "stopped 3 times" in job.error


def test_a_crashing_task_fails_the_job_with_its_error_and_leaves_no_file(trader):
    job = queued(trader)

    def runner(run: JobRun) -> None:
        write_file(run, "half a fi")
        raise ValueError("disk on fire")

    job_execute(str(job.pk), runner)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error == "It failed: ValueError: disk on fire"
    assert job.result_file == "" and not job.file_available
    assert not any((Path(job_dir(job))).rglob("*.csv"))
    assert AuditEvent.objects.filter(action="job.failed", target_id=str(job.pk)).exists()


def job_dir(job: Job) -> Path:
    from django.conf import settings

    return Path(settings.MEDIA_ROOT) / "jobs" / str(job.pk)


def finished_with_file(owner) -> Job:
    job = queued(owner)
    job_execute(str(job.pk), succeed_with_file)
    job.refresh_from_db()
    return job


def test_the_owner_downloads_the_file_through_the_signed_link(trader, key_client):
    job = finished_with_file(trader)
    client = key_client(trader)
    body = client.get(f"/api/v1/jobs/{job.pk}").json()
    assert body["status"] == "succeeded" and body["result"] == {"rows": 1}
    response = client.get(body["download_url"])
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"a,b\n1,2\n"
    assert 'filename="export.csv"' in response["Content-Disposition"]


def test_a_download_by_someone_else_is_not_found_even_with_the_owners_link(trader, make_user, key_client):
    job = finished_with_file(trader)
    link = key_client(trader).get(f"/api/v1/jobs/{job.pk}").json()["download_url"]
    mallory = make_user("mallory")
    response = key_client(mallory).get(link)
    assert response.status_code == 404 and response["Content-Type"] == "application/problem+json"
    assert key_client(mallory).get(f"/api/v1/jobs/{job.pk}").status_code == 404


def test_a_forged_token_is_not_found(trader, key_client):
    job = finished_with_file(trader)
    response = key_client(trader).get(f"/api/v1/jobs/{job.pk}/download?token={job.pk}:{trader.pk}:forged")
    assert response.status_code == 404


def test_an_expired_link_is_gone(trader, key_client, settings):
    job = finished_with_file(trader)
    link = key_client(trader).get(f"/api/v1/jobs/{job.pk}").json()["download_url"]
    settings.JOB_LINK_TTL_SECONDS = -1
    response = key_client(trader).get(link)
    assert response.status_code == 410 and response.json()["code"] == "link_expired"


def test_an_expired_file_is_gone_and_housekeeping_deletes_it(trader, key_client):
    job = finished_with_file(trader)
    link = key_client(trader).get(f"/api/v1/jobs/{job.pk}").json()["download_url"]
    Job.objects.filter(pk=job.pk).update(result_expires_at=timezone.now() - timedelta(seconds=1))
    response = key_client(trader).get(link)
    assert response.status_code == 410 and response.json()["code"] == "file_expired"
    assert job_files_expire() == 1
    assert not job_dir(job).exists()
    job.refresh_from_db()
    assert job.result_file == "" and job.result == {"rows": 1}


def test_cancel_stops_a_running_job_at_its_next_progress_and_keeps_nothing(trader, key_client):
    job = queued(trader)
    client = key_client(trader)

    def runner(run: JobRun) -> None:
        path = write_file(run)
        assert client.post(f"/api/v1/jobs/{job.pk}/cancel").json()["status"] == "canceled"
        run._last_at = 0  # the next report is due now
        run.progress(60)
        job_succeed(run.job, file=path)

    job_execute(str(job.pk), runner)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELED and job.result_file == "" and not job_dir(job).joinpath(".partial").exists()
    response = client.post(f"/api/v1/jobs/{job.pk}/cancel")
    assert (
        response.status_code == 409 and response.json()["status"] == 409 and response.json()["code"] == "job_finished"
    )


def test_jobs_are_listed_to_their_owner_and_to_operators(trader, make_user, key_client):
    own = queued(trader)
    queued(make_user("bob"))
    assert [j["id"] for j in key_client(trader).get("/api/v1/jobs").json()["results"]] == [str(own.pk)]
    operator = make_user("olga", role=Role.OPERATOR)
    assert len(key_client(operator).get("/api/v1/jobs").json()["results"]) == 2
    assert key_client(trader).get("/api/v1/jobs?status=succeeded").json()["results"] == []


def test_a_job_running_past_every_time_limit_is_failed_by_housekeeping(trader):
    job = queued(trader)
    job_claim(str(job.pk))
    Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(days=1))
    assert jobs_stuck_fail() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "worker stopped" in job.error


def test_an_unknown_job_id_is_not_found(trader, key_client):
    assert key_client(trader).get("/api/v1/jobs/not-a-uuid").status_code == 404
    assert key_client(trader).get("/api/v1/jobs/00000000-0000-0000-0000-000000000000").status_code == 404
