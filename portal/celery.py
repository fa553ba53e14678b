"""The Celery app of the full stack (worker and beat); embedded mode runs tasks in-process."""

import os
from typing import Any

from celery import Celery
from celery.signals import beat_init, task_postrun, task_prerun, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("tradeport")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _bind_request_id(task=None, **kwargs):
    """A job carries the request id of the request that enqueued it, into logs and audit."""
    import structlog

    from audit.context import AuditContext, audit_context_set

    request_id = (getattr(task.request, "headers", None) or {}).get("request_id") or task.request.id or ""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id, task=task.name)
    _audit_context_tokens[task.request.id] = audit_context_set(AuditContext(request_id=request_id))


#: The audit context each running task set, to give back when it ends: a task run in-process
#: (embedded mode, eager tests) must not leave its request id to whatever runs next there.
_audit_context_tokens: dict[str, Any] = {}


@task_postrun.connect
def _unbind_request_id(task=None, task_id=None, **kwargs):
    from audit.context import audit_context_reset

    token = _audit_context_tokens.pop(task_id, None)
    if token is not None:
        audit_context_reset(token)


@worker_ready.connect
def _worker_heartbeat_at_start(sender=None, **kwargs):
    from portal.health import heartbeat_beat

    heartbeat_beat("worker", detail=getattr(sender, "hostname", ""))


@beat_init.connect
def _beat_heartbeat_at_start(sender=None, **kwargs):
    from portal.health import heartbeat_beat

    heartbeat_beat("beat")
