"""Enqueue a Celery task after commit: to the broker in the full stack, to an in-process
thread pool in embedded mode (so a job never blocks the request that started it)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, transaction

from audit.context import audit_context_get

_embedded_pool: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _embedded_pool
    if _embedded_pool is None:
        _embedded_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tradeport-job")
    return _embedded_pool


def _run_embedded(task, kwargs: dict, request_id: str) -> None:
    try:
        task.apply(kwargs=kwargs, headers={"request_id": request_id})
    finally:
        close_old_connections()


def submit_embedded(task, kwargs: dict, *, request_id: str) -> None:
    """Run `task` on the in-process pool now (embedded mode only)."""
    _pool().submit(_run_embedded, task, kwargs, request_id)


def enqueue(task, **kwargs) -> None:
    """Send `task(**kwargs)` once the current transaction commits, with the request id attached."""
    request_id = audit_context_get().request_id

    def send() -> None:
        if settings.CELERY_EMBEDDED:
            submit_embedded(task, kwargs, request_id=request_id)
        else:
            task.apply_async(kwargs=kwargs, headers={"request_id": request_id})

    transaction.on_commit(send)
