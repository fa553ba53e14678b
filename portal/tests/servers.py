"""A real daphne serving `portal.asgi` for end-to-end and browser tests (HTTP and /ws/v1/), run
as the portal runs it (`python -m portal.asgi_server`); and a real Celery worker on the test
database and this Redis."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ASGI_APP = "portal.asgi:application"


@contextlib.contextmanager
def daphne_serving(log_dir: Path, extra_args: tuple[str, ...] = ()) -> Iterator[int]:
    """daphne on a free port of 127.0.0.1, on the test database and this Redis (so events
    committed in the test process reach its sockets through the Redis channel layer), without
    the embedded scheduler and simulator; yields the port, stops daphne by its PID. Skips
    without PostgreSQL and Redis: a process of its own cannot open the test's SQLite database
    in memory, and an in-memory channel layer does not cross processes."""
    full_stack_required()
    with asgi_serving(ASGI_APP, log_dir / "daphne.log", full_stack_env(), extra_args) as port:
        yield port


def full_stack_required() -> None:
    """Skip the test without PostgreSQL and Redis: a process of its own cannot open the test's
    SQLite database in memory, and an in-memory broker or channel layer does not cross processes.
    CI runs on both and fails on any skip."""
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL); CI runs on them")


def full_stack_env() -> dict[str, str]:
    """The environment of a process of the full stack on the test database and this Redis."""
    db = connection.settings_dict
    return {
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "DB_CONN_MAX_AGE": "0",
        "EMBEDDED_BACKGROUND": "0",
        "SIMULATOR_ENABLED": "0",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }


@contextlib.contextmanager
def asgi_serving(app: str, log: Path, env: dict[str, str], extra_args: tuple[str, ...] = ()) -> Iterator[int]:
    """`python -m portal.asgi_server` serving `app` on a free port of 127.0.0.1 (ready when its
    `/livez` answers 200), with `env` over this process's environment; yields the port, stops
    the server by its PID."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.set_inheritable(True)
    with log.open("wb") as output:  # a file, not a pipe: a full pipe would stall the server
        proc = subprocess.Popen(
            [sys.executable, "-m", "portal.asgi_server", "--fd", str(listener.fileno()), "--access-log", "/dev/null"]
            + [*extra_args, app],
            env={**os.environ, **env},
            pass_fds=(listener.fileno(),),
            start_new_session=True,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    port = listener.getsockname()[1]
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2).status == 200:  # noqa: S310
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daphne did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        listener.close()


class CeleryWorker:
    """`celery -A portal worker` on the test database and this Redis, in a process group of its
    own: `start()` waits until it is ready, `kill()` kills it at once (the whole group, as a
    machine that lost power), `stop()` asks it to stop (SIGTERM), both by its PID."""

    #: What the process logs once it is up.
    READY = b"ready."

    def __init__(self, log: Path, *, queues: str = "", env: dict[str, str] | None = None) -> None:
        full_stack_required()
        self.log, self.queues, self.env = log, queues, env or {}
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", self.queues, "-c", "1"] + [
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"test-{os.getpid()}@%h",
            "--loglevel",
            "INFO",
        ]

    def start(self) -> CeleryWorker:
        with self.log.open("ab") as output:
            self.proc = subprocess.Popen(
                self.command(),
                env={**os.environ, **full_stack_env(), **self.env},
                start_new_session=True,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while self.READY not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


class CeleryBeat(CeleryWorker):
    """`celery -A portal beat` with the database scheduler (django-celery-beat), as the full stack
    runs it; started and stopped like `CeleryWorker`."""

    READY = b"beat: Starting..."

    def command(self) -> list[str]:
        schedule = self.log.with_suffix(".schedule")
        return [sys.executable, "-m", "celery", "-A", "portal", "beat", "--loglevel", "INFO", "-s", str(schedule)]
