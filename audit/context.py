"""Who is acting and from where, carried through a request or a job by a context variable.

Middleware fills it per request (ip, user agent, request id, user), API key authentication
adds the key; Celery tasks restore the request id of the request that enqueued them.
`audit_record` reads it so callers pass only what the action is about.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class AuditContext:
    request_id: str = ""
    ip: str | None = None
    user_agent: str = ""
    user_id: int | None = None
    api_key_id: int | None = None


_NOBODY = AuditContext()
_current: contextvars.ContextVar[AuditContext] = contextvars.ContextVar("audit_context", default=_NOBODY)


def audit_context_get() -> AuditContext:
    return _current.get()


def audit_context_set(context: AuditContext) -> contextvars.Token:
    return _current.set(context)


def audit_context_update(**changes) -> None:
    _current.set(replace(_current.get(), **changes))


def audit_context_reset(token: contextvars.Token) -> None:
    _current.reset(token)
