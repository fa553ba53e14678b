"""Request-wide plumbing: request id, Server-Timing, log context, audit context, body limit."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from audit.context import AuditContext, audit_context_reset, audit_context_set, audit_context_update
from portal.net import client_ip

_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
logger = structlog.get_logger("portal.request")


def _request_id_from(request: HttpRequest) -> str:
    """The client's X-Request-ID when it is a sane token, a fresh one otherwise."""
    sent = request.META.get("HTTP_X_REQUEST_ID", "")
    if sent and _REQUEST_ID_PATTERN.match(sent):
        return sent
    return uuid.uuid4().hex


def is_api_path(path: str) -> bool:
    return path.startswith("/api/")


class RequestContextMiddleware:
    """Gives every request an id (echoed as X-Request-ID), binds it to logs and the audit
    context, and reports the time spent in the application as Server-Timing."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        request_id = _request_id_from(request)
        request.request_id = request_id  # type: ignore[attr-defined]
        ip = client_ip(request)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id, path=request.path, method=request.method, ip=ip)
        token = audit_context_set(
            AuditContext(
                request_id=request_id,
                ip=ip,
                user_agent=request.META.get("HTTP_USER_AGENT", "")[:512],
            )
        )
        try:
            response = self.get_response(request)
        finally:
            audit_context_reset(token)
        elapsed_ms = (time.perf_counter() - started) * 1000
        response["X-Request-ID"] = request_id
        response["Server-Timing"] = f"app;dur={elapsed_ms:.1f}"
        # The access log: one JSON line per request, with the request id (servers' own access
        # logs are switched off in favour of this one).
        log = logger.error if response.status_code >= 500 else logger.info
        log("request", status=response.status_code, duration_ms=round(elapsed_ms, 1))
        # The context stays bound until the next request so Django's own request log line
        # (written after the middleware chain returns) still carries the request id.
        return response


class AuditContextMiddleware:
    """After session authentication: the logged-in user joins the audit and log context.
    (API key authentication does the same for key-authenticated API calls.)"""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            audit_context_update(user_id=user.pk)
            structlog.contextvars.bind_contextvars(user=user.get_username())
        return self.get_response(request)


class BodySizeLimitMiddleware:
    """Refuses a declared body larger than MAX_REQUEST_BODY_BYTES with 413 before reading it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(declared)
        except ValueError:
            length = 0
        if length > settings.MAX_REQUEST_BODY_BYTES:
            from portal.api.errors import problem_response

            detail = f"The request body is {length} bytes; the limit is {settings.MAX_REQUEST_BODY_BYTES} bytes."
            if is_api_path(request.path):
                return problem_response(status=413, code="payload_too_large", detail=detail, request=request)
            return HttpResponse(detail, status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
