"""Serializers of identity & access endpoints: me, system info, API keys."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal.choices import ApiKeyScope
from portal.models import ApiKey


class ApiKeyRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    prefix = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())


class MeSerializer(serializers.Serializer):
    """The caller. A plain Serializer: /me is the hottest read and a ModelSerializer's field
    introspection costs more than the whole rest of it (bench/README.md)."""

    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    email = serializers.EmailField(read_only=True)
    first_name = serializers.CharField(read_only=True)
    last_name = serializers.CharField(read_only=True)
    role = serializers.CharField(read_only=True, allow_null=True)
    two_factor_enabled = serializers.BooleanField(read_only=True)
    auth_method = serializers.SerializerMethodField()
    api_key = serializers.SerializerMethodField()
    date_joined = serializers.DateTimeField(read_only=True)
    last_login = serializers.DateTimeField(read_only=True, allow_null=True)

    def get_auth_method(self, user) -> str:
        return "api_key" if isinstance(self.context["request"].auth, ApiKey) else "session"

    @extend_schema_field(ApiKeyRefSerializer(allow_null=True))
    def get_api_key(self, user) -> dict | None:
        key = self.context["request"].auth
        if not isinstance(key, ApiKey):
            return None
        return {"id": key.pk, "prefix": key.prefix, "scopes": key.scopes}


class ApiKeySerializer(serializers.ModelSerializer):
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "allowed_ips",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "last_used_ip",
            "created_at",
            "is_active",
        ]
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
    key = serializers.CharField(read_only=True, help_text="The secret key. Shown only in this response.")

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
