"""The one domain error type: services raise it, each surface renders it its own way."""

from __future__ import annotations


class DomainError(Exception):
    """A rule said no. `code` is stable for clients; `status` is the HTTP status the API answers.

    The API renders it as problem details, the portal as a form error, the WebSocket as an
    error frame.
    """

    status: int = 422

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        errors: dict | None = None,
        extra: dict | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.errors = errors
        #: Extension members of the problem JSON (e.g. the rejected order's id, a current status).
        self.extra = extra or {}
        if status is not None:
            self.status = status


class NotFoundError(DomainError):
    status = 404


class ConflictError(DomainError):
    status = 409
