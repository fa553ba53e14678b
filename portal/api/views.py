"""Base classes of every API view: idempotent writes and rate-limit headers built in."""

from __future__ import annotations

import json

from django.core.serializers.json import DjangoJSONEncoder
from rest_framework import generics, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.idempotency import (
    IdempotencyKeyTaken,
    IdempotencyTicket,
    idempotency_answer_record,
    idempotency_answers_store,
    idempotency_begin,
    idempotency_begin_deferred,
    idempotency_complete,
    idempotency_end_deferred,
    request_fingerprint,
)
from portal.models import ApiKey

IDEMPOTENT_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class _IdempotentReplay(Exception):
    def __init__(self, response: Response):
        self.response = response


def _idempotency_scope(request) -> str | None:
    if isinstance(request.auth, ApiKey):
        return f"key:{request.auth.pk}"
    if request.user and request.user.is_authenticated:
        return f"user:{request.user.pk}"
    return None


class TradeportApiMixin(APIView):
    """Honours `Idempotency-Key` on POST / PUT / PATCH / DELETE and adds RateLimit-* headers.

    The key is claimed after authentication, permissions and rate limits passed, so a
    refused request never burns a key.
    """

    _idempotency_record = None
    _idempotency_ticket: IdempotencyTicket | None = None
    #: Response fields never stored for replay (a replay answers them as null).
    idempotency_secret_fields: tuple[str, ...] = ()

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        key = request.headers.get("Idempotency-Key")
        scope = _idempotency_scope(request)
        if key is None or request.method not in IDEMPOTENT_METHODS or scope is None:
            return
        begin = idempotency_begin_deferred if self.idempotency_deferred() else idempotency_begin
        start = begin(
            scope=scope,
            key=key,
            method=request.method,
            path=request.get_full_path(),
            fingerprint=request_fingerprint(method=request.method, path=request.get_full_path(), body=request.body),
        )
        if isinstance(start, IdempotencyTicket):
            self._idempotency_ticket = start
        elif start.replay:
            record = start.record
            headers = dict(record.response_headers)
            content_type = headers.pop("Content-Type", None)
            raise _IdempotentReplay(
                Response(
                    record.response_body,
                    status=record.response_status,
                    headers={**headers, "Idempotent-Replayed": "true"},
                    content_type=content_type,
                )
            )
        else:
            self._idempotency_record = start.record

    def idempotency_deferred(self) -> bool:
        """True where the view's service writes the answered record itself, in its own
        transaction (`IdempotencyTicket`); the key is then claimed in Redis meanwhile."""
        return False

    def handle_exception(self, exc):
        if isinstance(exc, _IdempotentReplay):
            return exc.response
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        usage = getattr(request, "rate_limit_usage", None)
        if usage is not None:
            from portal.api.ratelimit import rate_limit_headers

            for name, value in rate_limit_headers(usage).items():
                response[name] = value
        if self._idempotency_record is not None:
            record, self._idempotency_record = self._idempotency_record, None
            body, headers = self._idempotency_answer(response)
            idempotency_complete(record=record, status=response.status_code, body=body, headers=headers)
        if self._idempotency_ticket is not None:
            ticket, self._idempotency_ticket = self._idempotency_ticket, None
            try:
                if not ticket.answered:  # refused before the service ran (validation, permissions)
                    body, headers = self._idempotency_answer(response)
                    answered = idempotency_answer_record(
                        ticket, status=response.status_code, body=body, headers=headers
                    )
                    idempotency_answers_store([answered] if answered is not None else [])
            except IdempotencyKeyTaken:
                pass  # answered already by an attempt that got further: that answer stands
            finally:
                idempotency_end_deferred(ticket)
        return response

    def _idempotency_answer(self, response) -> tuple[object, dict[str, str]]:
        """What a replay of `response` gives back: its body (secrets blanked) and headers."""
        body = json.loads(json.dumps(response.data, cls=DjangoJSONEncoder)) if response.data is not None else None
        if isinstance(body, dict):
            body.update({field: None for field in self.idempotency_secret_fields if field in body})
        headers = {name: value for name, value in response.items() if name == "Location"}
        if getattr(response, "content_type", None):
            headers["Content-Type"] = response.content_type  # set explicitly, e.g. problem+json
        return body, headers


class ApiView(TradeportApiMixin):
    pass


class GenericApiView(TradeportApiMixin, generics.GenericAPIView):
    pass


class ApiViewSet(TradeportApiMixin, viewsets.GenericViewSet):
    pass
