"""Reports on demand (jobs whose result is a PDF, CSV or XLSX file) and report schedules."""

from __future__ import annotations

from typing import cast

from django.shortcuts import redirect
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from portal.api.docs import PROBLEM_RESPONSES, problem
from portal.api.pagination import CreatedCursorPagination
from portal.api.v1.serializers import JobSerializer
from portal.api.views import ApiViewSet
from portal.errors import NotFoundError
from portal.jobs import job_download_path
from portal.models import Job, User
from reports.api.v1.report_serializers import ReportRequestSerializer, ReportScheduleSerializer
from reports.models import ReportSchedule
from reports.services import (
    report_schedule_delete,
    report_schedule_get_visible,
    report_schedule_save,
    report_schedules_visible_to,
    report_submit,
    reports_visible_to,
)


@extend_schema_view(
    list=extend_schema(summary="Your reports, newest first", responses={200: JobSerializer(many=True)}),
    retrieve=extend_schema(summary="One report's job", responses={200: JobSerializer, **PROBLEM_RESPONSES}),
)
class ReportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Account statements, trade blotters, risk reports and (operators) audit reports, built by a
    job: POST answers 202 with the job; follow it at `jobs/{id}` or on the `jobs` stream; download
    the file from its `download_url` (or `reports/{id}/download`)."""

    serializer_class = JobSerializer
    pagination_class = CreatedCursorPagination
    lookup_value_regex = r"[0-9a-fA-F-]{32,36}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Job.objects.none()
        return reports_visible_to(cast(User, self.request.user))

    def get_object(self):
        job = self.get_queryset().filter(pk=self.kwargs["pk"]).first()
        if job is None:
            raise NotFoundError("not_found", f"No report {self.kwargs['pk']} among your reports.")
        return job

    @extend_schema(
        summary="Generate a report (a job): 202 with the job",
        request=ReportRequestSerializer,
        responses={
            202: JobSerializer,
            **PROBLEM_RESPONSES,
            403: problem("Audit reports are for operators", "forbidden", 403),
        },
    )
    def create(self, request):
        payload = ReportRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        job = report_submit(
            user=cast(User, request.user),
            report=data["report"],
            format=data["format"],
            start=data["start"],
            end=data["end"],
            account_id=data.get("account"),
        )
        location = reverse("v1:job-detail", kwargs={"pk": job.pk})
        body = JobSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})

    @extend_schema(
        summary="Download the report's file: a redirect to its signed link (your own reports only)",
        responses={302: OpenApiResponse(description="To the job's signed download link"), **PROBLEM_RESPONSES},
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        job = self.get_object()
        link = job_download_path(job) if job.owner_id == request.user.pk else None
        if link is None:
            raise NotFoundError("not_found", f"Report {pk} has no file of yours to download.")
        return redirect(link)


@extend_schema_view(
    list=extend_schema(summary="Your report schedules", responses={200: ReportScheduleSerializer(many=True)}),
    retrieve=extend_schema(summary="One schedule", responses={200: ReportScheduleSerializer, **PROBLEM_RESPONSES}),
    create=extend_schema(
        summary="Email a report on a cadence (daily, weekly or cron, UTC)",
        responses={201: ReportScheduleSerializer, **PROBLEM_RESPONSES},
    ),
    update=extend_schema(summary="Change a schedule", responses={200: ReportScheduleSerializer, **PROBLEM_RESPONSES}),
    partial_update=extend_schema(
        summary="Change some of a schedule", responses={200: ReportScheduleSerializer, **PROBLEM_RESPONSES}
    ),
    destroy=extend_schema(summary="Delete a schedule", responses={204: None, **PROBLEM_RESPONSES}),
)
class ReportScheduleViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    ApiViewSet,
):
    """Each run reports on the `period_days` whole days before the day it runs and emails the file
    to the recipients; `last_status` / `last_error` show how the last run went."""

    serializer_class = ReportScheduleSerializer
    pagination_class = None
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ReportSchedule.objects.none()
        return report_schedules_visible_to(cast(User, self.request.user))

    def get_object(self):
        return report_schedule_get_visible(user=cast(User, self.request.user), schedule_id=int(self.kwargs["pk"]))

    def perform_create(self, serializer):
        serializer.instance = report_schedule_save(user=cast(User, self.request.user), **_fields(serializer))

    def perform_update(self, serializer):
        serializer.instance = report_schedule_save(
            user=cast(User, self.request.user), schedule=serializer.instance, **_fields(serializer)
        )

    def perform_destroy(self, instance):
        report_schedule_delete(schedule=instance)


def _fields(serializer) -> dict:
    """The validated fields as the model names them (`account` arrives as `account_id`)."""
    return dict(serializer.validated_data)
