"""Reports endpoints: exports of audit events, orders and trades (jobs whose result is a file)."""

from __future__ import annotations

from typing import cast

from django.urls import reverse
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.response import Response

from portal.api.docs import PROBLEM_RESPONSES, problem
from portal.api.pagination import CreatedCursorPagination
from portal.api.v1.serializers import JobSerializer
from portal.api.views import ApiViewSet
from portal.models import Job, User
from reports.api.v1.serializers import ExportRequestSerializer
from reports.exports import export_jobs_of, export_submit


@extend_schema_view(
    list=extend_schema(
        summary="Your exports, newest first",
        responses={200: JobSerializer(many=True), **PROBLEM_RESPONSES},
    ),
)
class ExportViewSet(mixins.ListModelMixin, ApiViewSet):
    """Exports of the audit log (operators), orders and trades (yours; operators: everyone's) as
    CSV, JSON or NDJSON, made by a job: POST answers 202 with the job; follow it at `jobs/{id}`
    or on the `jobs` WebSocket stream, and download the file from its `download_url`."""

    serializer_class = JobSerializer
    pagination_class = CreatedCursorPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Job.objects.none()
        return export_jobs_of(user=cast(User, self.request.user))

    @extend_schema(
        summary="Start an export (a job): 202 with the job, its URL in Location",
        request=ExportRequestSerializer,
        examples=[
            OpenApiExample(
                "Last week's orders of one account",
                value={
                    "dataset": "orders",
                    "format": "csv",
                    "account": 42,
                    "start": "2026-11-24T00:00:00Z",
                    "end": "2026-12-01T00:00:00Z",
                },
                request_only=True,
            )
        ],
        responses={
            202: JobSerializer,
            **PROBLEM_RESPONSES,
            400: problem("Invalid request, a filter the dataset does not take, or end before start", "bad_range"),
            403: problem("Audit exports are for operators", "role_forbidden", 403),
            404: problem("No such account among yours, or no such symbol", "not_found", 404),
        },
    )
    def create(self, request):
        payload = ExportRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        filters = dict(payload.validated_data)
        job = export_submit(
            user=cast(User, request.user), dataset=filters.pop("dataset"), format=filters.pop("format"), filters=filters
        )
        body = JobSerializer(job, context={"request": request}).data
        location = reverse("v1:job-detail", kwargs={"pk": job.pk})
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})
