"""Identity & access models: the custom user, API keys, stored idempotent responses; and the
background jobs every app runs (ADR 0007)."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django.utils.functional import cached_property

from portal.choices import JOB_FINISHED, ROLE_ORDER, ApiKeyScope, JobKind, JobStatus, Role


class User(AbstractUser):
    """A person who uses Tradeport; their role is the highest role group they belong to."""

    email = models.EmailField(blank=True)
    #: The last number of the user's private `jobs` stream (ADR 0007): taken with the job's update.
    jobs_seq = models.BigIntegerField(default=0, editable=False)
    #: The last number of the user's private `strategies` stream (ADR 0008).
    strategies_seq = models.BigIntegerField(default=0, editable=False)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    @cached_property
    def role(self) -> str | None:
        """The strongest of the user's role groups (superusers are admins)."""
        if self.is_superuser:
            return Role.ADMIN
        names = {group.name for group in self.groups.all()}
        for role in reversed(ROLE_ORDER):
            if role in names:
                return role
        return None

    @cached_property
    def two_factor_enabled(self) -> bool:
        from django_otp.plugins.otp_totp.models import TOTPDevice

        return TOTPDevice.objects.filter(user=self, confirmed=True).exists()

    def has_role_at_least(self, role: str) -> bool:
        current = self.role
        return current is not None and ROLE_ORDER.index(current) >= ROLE_ORDER.index(role)


class ApiKey(models.Model):
    """A credential for integrations: shown once, stored as a SHA-256 hash, scoped and revocable.

    The public `prefix` identifies the key in lists and logs; the secret part is never stored.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_key = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list, help_text="Subset of: read, trade.")
    allowed_ips = models.JSONField(
        default=list, blank=True, help_text="IP addresses or CIDR networks; empty allows any."
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    #: What may be shown of a key anywhere (API, admin); never the hash.
    PUBLIC_FIELDS = (
        "name",
        "prefix",
        "scopes",
        "allowed_ips",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "last_used_ip",
        "created_at",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return not self.is_revoked and not self.is_expired

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or (scope == ApiKeyScope.READ and ApiKeyScope.TRADE in self.scopes)


class IdempotencyRecord(models.Model):
    """One Idempotency-Key of one caller: the request's fingerprint and, once done, its response."""

    scope = models.CharField(max_length=64, help_text="user:<id> or key:<id> — keys never collide across callers.")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=2048)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    locked_until = models.DateTimeField(help_text="Until then an unfinished request counts as in flight.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="idempotency_key_unique_per_caller")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"

    @property
    def is_complete(self) -> bool:
        return self.response_status is not None


class Job(models.Model):
    """One background job (a VaR run, a report, an export…): the truth about it, whatever Celery
    knows. A task claims its row before it works (`portal.jobs.job_claim`), so a redelivered task
    never does the work twice; the result is small figures (`result`) and/or a file under
    `MEDIA_ROOT/jobs/<id>/`, put in place when the job succeeds (ADR 0007)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=JobKind.choices)
    owner = models.ForeignKey(User, on_delete=models.PROTECT, related_name="jobs")
    account = models.ForeignKey(
        "trading.TradingAccount", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    params = models.JSONField(default=dict, help_text="The validated request: what the job was asked to do.")
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    message = models.CharField(max_length=255, blank=True, help_text="What the job is doing now.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times a worker claimed it.")
    error = models.TextField(blank=True, help_text="Why it failed, for its owner; the traceback is in the log.")
    result = models.JSONField(null=True, blank=True)
    result_file = models.CharField(max_length=255, blank=True, help_text="Relative to MEDIA_ROOT.")
    result_size = models.BigIntegerField(null=True, blank=True)
    result_expires_at = models.DateTimeField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="job_owner_recent_idx"),
            models.Index(fields=["kind", "-created_at"], name="job_kind_recent_idx"),
            models.Index(fields=["status", "result_expires_at"], name="job_status_expiry_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="job_progress_at_most_100"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in JOB_FINISHED

    @property
    def file_available(self) -> bool:
        return bool(self.result_file) and (self.result_expires_at is None or self.result_expires_at > timezone.now())
