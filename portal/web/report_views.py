"""The portal's reports page: generate a statement, blotter, risk or (operators) audit report,
export orders, trades or (operators) the audit log, watch each job's progress bar, download the
files; create, pause and delete the schedules that email reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from portal.choices import JobKind, Role
from portal.errors import DomainError, NotFoundError
from portal.jobs import job_download_path
from portal.models import Job
from portal.web.trading_views import current_account
from reports.exports import EXPORT_FORMATS, export_submit
from reports.models import Cadence
from reports.services import (
    report_schedule_delete,
    report_schedule_get_visible,
    report_schedule_save,
    report_schedules_visible_to,
    report_submit,
)

JOBS_SHOWN = 20
REPORT_CHOICES = [("statement", "Account statement"), ("blotter", "Trade blotter"), ("risk", "Risk report")]
FORMAT_CHOICES = [("pdf", "PDF"), ("csv", "CSV"), ("xlsx", "XLSX")]
WEEKDAYS = [
    (0, "Sunday"),
    (1, "Monday"),
    (2, "Tuesday"),
    (3, "Wednesday"),
    (4, "Thursday"),
    (5, "Friday"),
    (6, "Saturday"),
]


@dataclass(frozen=True)
class JobRow:
    """A report or export job as the page lists it."""

    job: Job

    @property
    def subject(self) -> str:
        return self.job.params.get("report") or self.job.params.get("dataset") or self.job.kind

    @property
    def download_link(self) -> str | None:
        return job_download_path(self.job)


def _report_choices(user) -> list[tuple[str, str]]:
    audit = [("audit", "Audit report (venue)")] if user.has_role_at_least(Role.OPERATOR) else []
    return REPORT_CHOICES + audit


class ReportForm(forms.Form):
    prefix = "report"
    report = forms.ChoiceField()
    format = forms.ChoiceField(choices=FORMAT_CHOICES)
    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["report"]).choices = _report_choices(user)


class ExportForm(forms.Form):
    prefix = "export"
    dataset = forms.ChoiceField()
    format = forms.ChoiceField(choices=[(name, name.upper()) for name in EXPORT_FORMATS])
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    action = forms.CharField(required=False, label="Action (audit)", max_length=64)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        audit = [("audit", "Audit log")] if user.has_role_at_least(Role.OPERATOR) else []
        cast(forms.ChoiceField, self.fields["dataset"]).choices = [("orders", "Orders"), ("trades", "Trades"), *audit]
        if not audit:
            del self.fields["action"]


class ScheduleForm(forms.Form):
    prefix = "schedule"
    name = forms.CharField(max_length=100)
    report = forms.ChoiceField()
    format = forms.ChoiceField(choices=FORMAT_CHOICES)
    period_days = forms.IntegerField(label="Days covered", initial=1, min_value=1)
    cadence = forms.ChoiceField(choices=Cadence.choices)
    hour = forms.IntegerField(label="Hour (UTC)", initial=6, min_value=0, max_value=23)
    minute = forms.IntegerField(initial=0, min_value=0, max_value=59)
    weekday = forms.TypedChoiceField(choices=WEEKDAYS, coerce=int, initial=1, label="Weekday (weekly)")
    cron = forms.CharField(required=False, label="Cron (minute hour day month weekday)")
    recipients = forms.CharField(help_text="Email addresses, separated by commas.")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["report"]).choices = _report_choices(user)

    def clean_recipients(self) -> list[str]:
        return [address.strip() for address in self.cleaned_data["recipients"].split(",") if address.strip()]


@login_required
@require_http_methods(["GET", "POST"])
def reports(request):
    user = request.user
    account = current_account(request)
    today = timezone.now().date()
    initial = {"start": today - timedelta(days=30), "end": today}
    posted = request.POST.get("form") if request.method == "POST" else None
    report_form = ReportForm(request.POST if posted == "report" else None, user=user, initial=initial)
    export_form = ExportForm(request.POST if posted == "export" else None, user=user, initial=initial)
    schedule_form = ScheduleForm(request.POST if posted == "schedule" else None, user=user)
    if posted and not user.has_role_at_least(Role.TRADER):
        messages.error(request, "Reports and exports need the trader role.")
        return redirect("portal:reports")
    handlers = {"report": _generate, "export": _export, "schedule": _schedule}
    if posted in handlers:
        form = {"report": report_form, "export": export_form, "schedule": schedule_form}[posted]
        if form.is_valid():
            try:
                handlers[posted](request, form.cleaned_data, account)
            except DomainError as error:
                form.add_error(None, f"{error.message} ({error.code})")
            else:
                return redirect("portal:reports")
    jobs = [
        JobRow(job) for job in Job.objects.filter(owner=user, kind__in=[JobKind.REPORT, JobKind.EXPORT])[:JOBS_SHOWN]
    ]
    context = {
        "account": account,
        "report_form": report_form,
        "export_form": export_form,
        "schedule_form": schedule_form,
        "jobs": jobs,
        "schedules": report_schedules_visible_to(user).filter(owner=user),
    }
    return render(request, "portal/reports.html", context, status=422 if posted else 200)


def _generate(request, data, account) -> None:
    job = report_submit(
        user=request.user,
        report=data["report"],
        format=data["format"],
        start=data["start"],
        end=data["end"],
        account_id=None if data["report"] == "audit" or account is None else account.pk,
    )
    messages.success(request, f"Your {data['report']} report is being generated (job {str(job.pk)[:8]}).")


def _export(request, data, account) -> None:
    filters = {"start": data["start"], "end": data["end"]}
    if data["dataset"] == "audit":
        filters["action"] = data.get("action")
    elif account is not None:
        filters["account"] = account.pk
    job = export_submit(user=request.user, dataset=data["dataset"], format=data["format"], filters=filters)
    messages.success(request, f"Your {data['dataset']} export is being written (job {str(job.pk)[:8]}).")


def _schedule(request, data, account) -> None:
    fields = dict(data)
    fields["account_id"] = None if data["report"] == "audit" or account is None else account.pk
    schedule = report_schedule_save(user=request.user, **fields)
    messages.success(request, f"Schedule “{schedule.name}” created: it runs at {' '.join(schedule.crontab_fields)}.")


def _own_schedule(request, schedule_id: int):
    """The user's own schedule (404 otherwise, as for orders)."""
    try:
        schedule = report_schedule_get_visible(user=request.user, schedule_id=schedule_id)
    except NotFoundError as missing:
        raise Http404(missing.message) from missing
    if schedule.owner_id != request.user.pk:
        raise Http404("No such schedule among yours.")
    return schedule


@login_required
@require_POST
def schedule_toggle(request, schedule_id: int):
    schedule = _own_schedule(request, schedule_id)
    report_schedule_save(user=request.user, schedule=schedule, enabled=not schedule.enabled)
    return redirect("portal:reports")


@login_required
@require_POST
def schedule_delete(request, schedule_id: int):
    schedule = _own_schedule(request, schedule_id)
    report_schedule_delete(schedule=schedule)
    messages.success(request, f"Schedule “{schedule.name}” deleted.")
    return redirect("portal:reports")
