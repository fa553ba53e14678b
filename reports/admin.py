"""Admin of reports: every user's schedules (saved through the checked, audited service, which
keeps each one's django-celery-beat periodic task in step), their runs and emails."""

from django import forms
from django.contrib import admin

from audit.admin_mixins import ReadOnlyAdmin
from portal.errors import DomainError
from reports.models import EmailDelivery, ReportSchedule, ScheduledRun
from reports.services import report_schedule_check, report_schedule_delete, report_schedule_save


class ReportScheduleForm(forms.ModelForm):
    class Meta:
        model = ReportSchedule
        fields = [
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
            "recipients",
            "enabled",
        ]

    def clean(self):
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        candidate = ReportSchedule(**{name: cleaned.get(name) for name in self.Meta.fields})
        try:
            report_schedule_check(candidate)
        except DomainError as refused:
            raise forms.ValidationError(f"{refused.message} ({refused.code})") from refused
        return cleaned


@admin.register(ReportSchedule)
class ReportScheduleAdmin(admin.ModelAdmin):
    form = ReportScheduleForm
    list_display = ["name", "owner", "report", "format", "cadence", "enabled", "last_run_at", "last_status"]
    list_filter = ["enabled", "report", "cadence", "last_status"]
    search_fields = ["name", "owner__username"]
    readonly_fields = ["periodic_task", "last_run_at", "last_status", "last_error", "consecutive_failures"]

    def save_model(self, request, obj, form, change):
        report_schedule_save(user=obj.owner, schedule=obj)

    def delete_model(self, request, obj):
        report_schedule_delete(schedule=obj)

    def delete_queryset(self, request, queryset):
        for schedule in queryset:
            report_schedule_delete(schedule=schedule)


class EmailDeliveryInline(admin.TabularInline):
    model = EmailDelivery
    extra = 0
    can_delete = False
    readonly_fields = ["recipient", "sent_at", "attempts", "error"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ScheduledRun)
class ScheduledRunAdmin(ReadOnlyAdmin):
    list_display = ["schedule", "run_key", "job", "created_at"]
    list_select_related = ["schedule", "job"]
    inlines = [EmailDeliveryInline]
