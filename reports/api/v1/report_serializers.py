"""Serializers of reports on demand and report schedules."""

from rest_framework import serializers

from reports.models import ReportSchedule
from reports.services import MAX_REPORT_DAYS


class ReportRequestSerializer(serializers.Serializer):
    """A report over whole days (UTC), both included. `report` is statement, blotter, risk (one of
    your accounts) or audit (operators, the whole venue); `format` pdf, csv or xlsx."""

    report = serializers.CharField(max_length=16)
    format = serializers.CharField(max_length=8)
    start = serializers.DateField()
    end = serializers.DateField()
    account = serializers.IntegerField(required=False, allow_null=True)


class ReportScheduleSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    account = serializers.IntegerField(source="account_id", allow_null=True, required=False)
    recipients = serializers.ListField(child=serializers.CharField(max_length=254), allow_empty=True)
    period_days = serializers.IntegerField(min_value=1, max_value=MAX_REPORT_DAYS, default=1)
    hour = serializers.IntegerField(min_value=0, max_value=23, default=6, help_text="UTC, for daily and weekly.")
    minute = serializers.IntegerField(min_value=0, max_value=59, default=0)
    weekday = serializers.IntegerField(min_value=0, max_value=6, default=1, help_text="0 = Sunday … 6 = Saturday.")
    crontab = serializers.SerializerMethodField(help_text="When it runs: minute hour day month weekday (UTC).")

    class Meta:
        model = ReportSchedule
        fields = [
            "id",
            "owner",
            "name",
            "report",
            "format",
            "account",
            "period_days",
            "cadence",
            "hour",
            "minute",
            "weekday",
            "cron",
            "crontab",
            "recipients",
            "enabled",
            "last_run_at",
            "last_status",
            "last_error",
            "consecutive_failures",
            "created_at",
        ]
        read_only_fields = [
            "id",
            "owner",
            "crontab",
            "last_run_at",
            "last_status",
            "last_error",
            "consecutive_failures",
            "created_at",
        ]

    def get_crontab(self, schedule: ReportSchedule) -> str:
        return " ".join(schedule.crontab_fields)
