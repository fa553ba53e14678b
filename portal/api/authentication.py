"""API key authentication (`Authorization: Api-Key <key>` or `X-API-Key: <key>`) and session."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication

from portal.api.ratelimit import api_key_failure_wait
from portal.api_keys import ApiKeyRejected, api_key_authenticate
from portal.net import client_ip


def _presented_key(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "api-key":
            return credentials.strip()
        return None
    key = request.META.get("HTTP_X_API_KEY", "")
    return key.strip() or None


class ApiKeyAuthentication(BaseAuthentication):
    """Identifies the caller by API key; failures name their reason in the problem `code`."""

    def authenticate(self, request):
        presented = _presented_key(request)
        if presented is None:
            return None
        try:
            api_key = api_key_authenticate(raw_key=presented, ip=client_ip(request))
        except ApiKeyRejected as rejected:
            wait = api_key_failure_wait(request._request)
            if wait is not None:
                raise exceptions.Throttled(
                    wait=wait,
                    detail="Too many rejected API keys from this address; wait before trying again.",
                    code="api_key_failures",
                ) from None
            if rejected.status == 403:
                raise exceptions.PermissionDenied(rejected.message, code=rejected.code) from None
            raise exceptions.AuthenticationFailed(rejected.message, code=rejected.code) from None
        return api_key.user, api_key

    def authenticate_header(self, request):
        return 'Api-Key realm="api"'


class CsrfSessionAuthentication(SessionAuthentication):
    """The portal's session; unsafe methods need the CSRF token like any portal form."""


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`; the `X-API-Key: <key>` header is accepted as well.",
        }


class SessionAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api.authentication.CsrfSessionAuthentication"
    name = "SessionAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "Portal session; unsafe methods need the X-CSRFToken header.",
        }
