"""OpenAPI pieces shared by every endpoint: the problem-details error schema."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details, as every error of the API is answered."""

    type = serializers.CharField(help_text="URI naming the problem type (urn:tradeport:problem:<code>).")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField(help_text="Stable machine-readable reason, e.g. api_key_revoked.")
    trace_id = serializers.CharField(help_text="The request id; also in X-Request-ID and the logs.")
    instance = serializers.CharField(required=False)

    def get_fields(self):
        # "errors" would shadow Serializer.errors as a class attribute.
        fields = super().get_fields()
        fields["errors"] = serializers.DictField(required=False, help_text="Field errors of a 400 validation problem.")
        return fields


def problem(description: str, code: str = "error", status: int = 400) -> OpenApiResponse:
    return OpenApiResponse(
        response=ProblemSerializer,
        description=description,
        examples=[
            OpenApiExample(
                code,
                value={
                    "type": f"urn:tradeport:problem:{code}",
                    "title": description,
                    "status": status,
                    "detail": description,
                    "code": code,
                    "trace_id": "5f0c9b6f2a5e4d0e9b1f3c7a2d4e6f80",
                },
                response_only=True,
            )
        ],
    )


PROBLEM_RESPONSES = {
    400: problem("Malformed or invalid request", "validation_error", 400),
    401: problem("Missing, invalid, revoked or expired credentials", "api_key_revoked", 401),
    403: problem("Role, scope or IP allowlist forbids this", "role_forbidden", 403),
    404: problem("No such resource", "not_found", 404),
    409: problem("A request with this Idempotency-Key is in progress", "idempotency_request_in_progress", 409),
    413: problem("Body larger than the limit", "payload_too_large", 413),
    415: problem("Unsupported content type", "unsupported_media_type", 415),
    429: problem("Rate limit exceeded; see Retry-After", "rate_limited", 429),
}
