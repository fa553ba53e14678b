"""The `jobs` stream: a user's own jobs' changes (claimed, progress, finished), numbered per user
and after commit, so the portal's progress bar follows a job live (ADR 0007)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from marketdata.tests.test_streams import ORIGIN, run
from portal.api_keys import api_key_create
from portal.choices import JobKind
from portal.jobs import JobRun, job_execute, job_succeed
from portal.models import Job, User
from portal.routing import websocket_application

pytestmark = pytest.mark.django_db(transaction=True)


def run_job(owner: User) -> Job:
    job = Job.objects.create(kind=JobKind.VAR, owner=owner, params={})

    def runner(job_run: JobRun) -> None:
        for percent in (30, 60):
            job_run._last_at = 0  # report each step now
            job_run.progress(percent, f"step {percent}")
        job_succeed(job_run.job, result={"var": "1.5"})

    job_execute(str(job.pk), runner)
    return job


def test_the_jobs_stream_follows_the_users_own_jobs_in_order(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    key = api_key_create(user=alice, name="ws", scopes=["read"]).raw_key

    async def scenario():
        socket = WebsocketCommunicator(websocket_application, "/ws/v1/", headers=ORIGIN)
        assert (await socket.connect())[0]
        await socket.send_json_to({"op": "subscribe", "streams": ["jobs"]})
        refused = await socket.receive_json_from()
        await socket.send_json_to({"op": "auth", "api_key": key})
        await socket.receive_json_from()
        await socket.send_json_to({"op": "subscribe", "streams": ["jobs"]})
        subscribed = await socket.receive_json_from()
        await database_sync_to_async(run_job)(bob)
        job = await database_sync_to_async(run_job)(alice)
        received = []
        while not await socket.receive_nothing(timeout=0.5):
            received.append(await socket.receive_json_from())
        await socket.disconnect()
        return refused, subscribed, job, received

    refused, subscribed, job, received = run(scenario)
    assert refused["code"] == "unauthorized_stream"
    assert subscribed == {"op": "subscribed", "streams": ["jobs"]}
    assert {m["data"]["id"] for m in received} == {str(job.pk)}
    assert [(m["data"]["status"], m["data"]["progress"]) for m in received] == [
        ("running", 0),
        ("running", 30),
        ("running", 60),
        ("succeeded", 100),
    ]
    seqs = [m["seq"] for m in received]
    alice.refresh_from_db()
    assert seqs == list(range(seqs[0], seqs[0] + 4)) and seqs[-1] == alice.jobs_seq
    assert received[-1]["data"]["result"] == {"var": "1.5"} and received[-1]["stream"] == "jobs"
