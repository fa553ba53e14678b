"""Identity & access endpoints (who am I, system info, API keys) and jobs (status, cancel, download)."""

import mimetypes
from pathlib import Path
from typing import cast

from django.conf import settings
from django.http import FileResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from portal.api.docs import PROBLEM_RESPONSES, problem
from portal.api.pagination import CreatedCursorPagination
from portal.api.permissions import IsAuthenticatedWithScope, IsOwnerOrOperator
from portal.api.v1.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    JobSerializer,
    MeSerializer,
    SystemInfoSerializer,
    me_representation,
)
from portal.api.views import ApiView, ApiViewSet
from portal.api_keys import api_key_create, api_key_get, api_key_list, api_key_revoke
from portal.choices import JobKind, JobStatus, Role
from portal.health import PROCESS_STARTED_AT, health_report, system_versions, uptime_seconds
from portal.jobs import job_cancel, job_file_for_download, job_get_visible, jobs_visible_to
from portal.models import ApiKey, Job, User


class MeView(ApiView):
    @extend_schema(operation_id="me_retrieve", responses={200: MeSerializer, **PROBLEM_RESPONSES})
    def get(self, request):
        """The authenticated user, their role and how they authenticated."""
        return Response(me_representation(request.user, request.auth))


class SystemInfoView(ApiView):
    @extend_schema(operation_id="system_info_retrieve", responses={200: SystemInfoSerializer, **PROBLEM_RESPONSES})
    def get(self, request):
        """Versions, mode and uptime; operators also get every subsystem's health."""
        body = {
            "status": "ok",
            "mode": "embedded" if settings.EMBEDDED else "full",
            "started_at": PROCESS_STARTED_AT,
            "uptime_seconds": uptime_seconds(),
            "versions": system_versions(),
            "server_time": timezone.now(),
            "api_version": request.version,
        }
        if request.user.has_role_at_least(Role.OPERATOR):
            report = health_report()
            body["status"] = report["status"]
            body["components"] = report["components"]
        return Response(SystemInfoSerializer(body).data)


@extend_schema_view(
    list=extend_schema(summary="List your API keys", responses={200: ApiKeySerializer(many=True), **PROBLEM_RESPONSES}),
    retrieve=extend_schema(summary="One of your API keys", responses={200: ApiKeySerializer, **PROBLEM_RESPONSES}),
)
class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """API keys of the authenticated user. Creating and revoking need the trader role and,
    with an API key, the `trade` scope."""

    serializer_class = ApiKeySerializer
    queryset = ApiKey.objects.none()  # for the schema generator; requests use get_queryset
    permission_classes = [IsAuthenticatedWithScope, IsOwnerOrOperator]
    lookup_value_regex = r"\d+"
    idempotency_secret_fields = ("key",)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return api_key_list(user=cast(User, self.request.user))

    def get_object(self):
        api_key = api_key_get(user=cast(User, self.request.user), key_id=int(self.kwargs["pk"]))
        self.check_object_permissions(self.request, api_key)
        return api_key

    @extend_schema(
        summary="Create an API key",
        request=ApiKeyCreateSerializer,
        responses={
            201: ApiKeyCreatedSerializer,
            **PROBLEM_RESPONSES,
            409: problem(
                "The user holds the most active keys allowed, or this Idempotency-Key is in progress",
                "api_key_limit",
                409,
            ),
            422: problem("Idempotency-Key reused with another body"),
        },
        examples=[
            OpenApiExample(
                "Trading key", value={"name": "bot", "scopes": ["read", "trade"], "allowed_ips": ["203.0.113.0/24"]}
            )
        ],
    )
    def create(self, request):
        payload = ApiKeyCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        issued = api_key_create(user=request.user, actor=request.auth or request.user, **payload.validated_data)
        body = ApiKeyCreatedSerializer(issued.api_key).data
        body["key"] = issued.raw_key
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Revoke an API key", responses={204: OpenApiResponse(description="Revoked"), **PROBLEM_RESPONSES}
    )
    def destroy(self, request, pk=None):
        api_key_revoke(api_key=self.get_object(), actor=request.auth or request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        summary="Your jobs, newest first (operators: everyone's)",
        parameters=[
            OpenApiParameter("kind", str, enum=[k.value for k in JobKind]),
            OpenApiParameter("status", str, enum=[s.value for s in JobStatus]),
        ],
        responses={200: JobSerializer(many=True), **PROBLEM_RESPONSES},
    ),
    retrieve=extend_schema(
        summary="One job: status, progress, result and, once its file exists, a signed download link",
        responses={200: JobSerializer, **PROBLEM_RESPONSES},
    ),
)
class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Background jobs (VaR runs, reports, exports). Each is started by its own endpoint
    (`risk/var`, `reports`, `exports`), answered 202 with the job; follow it here or on the
    `jobs` WebSocket stream."""

    serializer_class = JobSerializer
    queryset = Job.objects.none()
    pagination_class = CreatedCursorPagination
    lookup_value_regex = r"[0-9a-fA-F-]{32,36}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        jobs = jobs_visible_to(cast(User, self.request.user))
        for name in ("kind", "status"):
            value = self.request.query_params.get(name)
            if value:
                jobs = jobs.filter(**{name: value})
        return jobs

    def get_object(self):
        return job_get_visible(user=cast(User, self.request.user), job_id=self.kwargs["pk"])

    @extend_schema(
        summary="Cancel a job that has not finished (a running one stops at its next progress report)",
        request=None,
        responses={200: JobSerializer, **PROBLEM_RESPONSES, 409: problem("The job has finished", "job_finished", 409)},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = job_cancel(user=cast(User, request.user), job_id=pk)
        return Response(JobSerializer(job, context={"request": request}).data)

    @extend_schema(
        summary="The job's file, with the signed token of its download link",
        parameters=[OpenApiParameter("token", str, required=True)],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(description="The file"),
            **PROBLEM_RESPONSES,
            410: problem("The link or the file has expired", "link_expired", 410),
        },
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        job = job_file_for_download(
            user=cast(User, request.user), job_id=pk, token=request.query_params.get("token", "")
        )
        path = Path(settings.MEDIA_ROOT) / job.result_file
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path.open("rb"), as_attachment=True, filename=path.name, content_type=content_type)
