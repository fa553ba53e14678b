"""RFC 9457 problem details for every error on an API path, DRF and Django alike."""

from __future__ import annotations

from http import HTTPStatus

import structlog
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from portal.errors import DomainError
from portal.middleware import is_api_path

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:tradeport:problem:"
logger = structlog.get_logger("portal.api")
SERVER_ERROR_DETAIL = "An unexpected error occurred; quote the trace_id when reporting it."

_DEFAULT_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    500: "server_error",
    503: "service_unavailable",
}


def problem_body(
    *,
    status: int,
    code: str | None = None,
    detail: str = "",
    errors: dict | None = None,
    request=None,
    trace_id: str = "",
    instance: str | None = None,
) -> dict:
    """The problem document; `trace_id` and `instance` come from `request`, or are given for
    an answer made away from its request (an order matched by another worker)."""
    code = code or _DEFAULT_CODES.get(status, "error")
    body = {
        "type": f"{PROBLEM_TYPE_BASE}{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or HTTPStatus(status).description,
        "code": code,
        "trace_id": getattr(request, "request_id", "") if request is not None else trace_id,
    }
    if request is not None:
        instance = request.path
    if instance is not None:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return body


def problem_response(
    *, status: int, code: str | None = None, detail: str = "", request=None, headers=None
) -> JsonResponse:
    """A problem response outside DRF (middleware, Django error handlers)."""
    response = JsonResponse(
        problem_body(status=status, code=code, detail=detail, request=request),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _first_code(exc: exceptions.APIException, fallback: str) -> str:
    codes = exc.get_codes()
    if isinstance(codes, str):
        return codes
    if isinstance(codes, list) and codes and isinstance(codes[0], str):
        return codes[0]
    return fallback


def _detail_text(exc: exceptions.APIException) -> str:
    if isinstance(exc.detail, str):
        return str(exc.detail)
    if isinstance(exc.detail, list) and exc.detail and isinstance(exc.detail[0], str):
        return str(exc.detail[0])
    return ""


def problem_exception_handler(exc: Exception, context: dict) -> Response:
    """DRF EXCEPTION_HANDLER: every exception becomes problem details, never a traceback."""
    request = context.get("request")
    headers: dict[str, str] = {}
    errors = None
    extra: dict = {}
    if isinstance(exc, DomainError):
        extra = exc.extra
        status, code, detail, errors = exc.status, exc.code, exc.message, exc.errors
    elif isinstance(exc, Http404):
        status, code, detail = 404, "not_found", "No such resource."
    elif isinstance(exc, DjangoPermissionDenied):
        status, code, detail = 403, "permission_denied", "You do not have permission to perform this action."
    elif isinstance(exc, RequestDataTooBig):
        status, code, detail = 413, "payload_too_large", "The request body is too large."
    elif isinstance(exc, exceptions.ValidationError):
        status, code, detail = 400, "validation_error", "The request has invalid fields."
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
    elif isinstance(exc, exceptions.APIException):
        status = exc.status_code
        code = _first_code(exc, _DEFAULT_CODES.get(status, "error"))
        detail = _detail_text(exc)
        if isinstance(exc, exceptions.ParseError):
            code = "malformed_request"
        if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
            headers["WWW-Authenticate"] = 'Api-Key realm="api"'
        wait = getattr(exc, "wait", None)
        if isinstance(exc, exceptions.Throttled) and wait is not None:
            headers["Retry-After"] = str(max(1, int(wait + 0.999)))
        if isinstance(exc, exceptions.MethodNotAllowed) and context.get("view") is not None:
            headers["Allow"] = ", ".join(context["view"].allowed_methods)
    else:
        logger.exception("unhandled_api_exception", exc_type=type(exc).__name__)
        status, code, detail = 500, "server_error", SERVER_ERROR_DETAIL
    set_rollback()
    body = {**extra, **problem_body(status=status, code=code, detail=detail, errors=errors, request=request)}
    response = Response(body, status=status, headers=headers, content_type=PROBLEM_CONTENT_TYPE)
    return response


def django_error_view(status: int):
    """Django handler400/403/404/500: problem JSON on /api/, the portal's error page elsewhere."""
    from django.shortcuts import render

    def view(request: HttpRequest, exception: Exception | None = None):
        if is_api_path(request.path):
            return problem_response(status=status, request=request)
        return render(
            request, "portal/error.html", {"status": status, "title": HTTPStatus(status).phrase}, status=status
        )

    return view
