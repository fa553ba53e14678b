"""Serializers of identity & access endpoints (me, system info, API keys) and of jobs."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal.choices import ApiKeyScope
from portal.jobs import job_download_path
from portal.models import ApiKey, Job


class ApiKeyRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    prefix = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())


# /me is the hottest read, so the view builds this shape with `me_representation` instead of
# instantiating the serializer, whose per-instance field copies cost about 0.3 ms a request
# (bench/README.md); a test keeps both in step.
class MeSerializer(serializers.Serializer):
    """The authenticated caller: identity, role, two-factor status and how they authenticated."""

    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    role = serializers.CharField(allow_null=True)
    two_factor_enabled = serializers.BooleanField()
    auth_method = serializers.ChoiceField(choices=["api_key", "session"])
    api_key = ApiKeyRefSerializer(allow_null=True)
    date_joined = serializers.DateTimeField()
    last_login = serializers.DateTimeField(allow_null=True)


def _iso(moment) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def me_representation(user, auth) -> dict:
    """MeSerializer's shape for `user`, authenticated by `auth` (an ApiKey or None)."""
    api_key = auth if isinstance(auth, ApiKey) else None
    return {
        "id": user.pk,
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "role": user.role,
        "two_factor_enabled": user.two_factor_enabled,
        "auth_method": "api_key" if api_key else "session",
        "api_key": {"id": api_key.pk, "prefix": api_key.prefix, "scopes": api_key.scopes} if api_key else None,
        "date_joined": _iso(user.date_joined),
        "last_login": _iso(user.last_login),
    }


class ApiKeySerializer(serializers.ModelSerializer):
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", *ApiKey.PUBLIC_FIELDS, "is_active"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKeyScope.choices),
        min_length=1,
        max_length=2,
        default=[ApiKeyScope.READ],
    )
    allowed_ips = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, default=list, max_length=50
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="The secret key, shown only in this response; null in an Idempotency-Key replay (never stored).",
    )

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class ComponentHealthSerializer(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.CharField()
    latency_ms = serializers.FloatField(allow_null=True)
    version = serializers.CharField()
    detail = serializers.CharField()


class SystemInfoSerializer(serializers.Serializer):
    status = serializers.CharField()
    mode = serializers.ChoiceField(choices=["embedded", "full"])
    started_at = serializers.DateTimeField()
    uptime_seconds = serializers.FloatField()
    versions = serializers.DictField(child=serializers.CharField())
    server_time = serializers.DateTimeField()
    api_version = serializers.CharField()
    components = ComponentHealthSerializer(many=True, required=False)


class JobSerializer(serializers.ModelSerializer):
    """A background job as its owner sees it, on the API and on the `jobs` stream. `download_url`
    (a signed link valid JOB_LINK_TTL_SECONDS) appears only for the owner, once the file exists."""

    owner = serializers.CharField(source="owner.username", read_only=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "status",
            "progress",
            "message",
            "owner",
            "account",
            "params",
            "attempts",
            "error",
            "result",
            "result_size",
            "result_expires_at",
            "download_url",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_download_url(self, job: Job) -> str | None:
        request = self.context.get("request")
        if request is None or request.user.pk != job.owner_id:
            return None
        path = job_download_path(job)
        return request.build_absolute_uri(path) if path is not None else None
