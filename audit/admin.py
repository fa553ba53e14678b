"""Read-only audit log in the admin: filters, search, the full event on its page, and an export
of the log (a job: reports.exports) filtered by time, action and actor."""

from django import forms
from django.contrib import admin

from audit.admin_mixins import ReadOnlyAdmin
from audit.models import AuditEvent
from portal.admin_actions import action_with_form


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = (
        "seq",
        "occurred_at",
        "action",
        "actor_type",
        "actor_label",
        "target_type",
        "target_id",
        "ip",
        "request_id",
    )
    list_filter = ("action", "actor_type", "target_type", ("occurred_at", admin.DateFieldListFilter))
    search_fields = ("actor_label", "action", "target_id", "target_label", "request_id", "ip", "hash")
    date_hierarchy = "occurred_at"
    ordering = ("-seq",)
    list_per_page = 100
    show_full_result_count = False
    readonly_fields = [field.name for field in AuditEvent._meta.fields]

    actions = ["export_audit_log"]

    @admin.action(description="Export the audit log (CSV / JSON / NDJSON), filtered, as a job")
    def export_audit_log(self, request, queryset):
        return action_with_form(
            self,
            request,
            queryset,
            title="Export the audit log",
            form_class=AuditExportForm,
            apply=lambda data: _export(request, data),
        )


class AuditExportForm(forms.Form):
    format = forms.ChoiceField(choices=[("csv", "CSV"), ("json", "JSON array"), ("ndjson", "NDJSON")])
    start = forms.DateTimeField(required=False, help_text="UTC; empty: from the first event.")
    end = forms.DateTimeField(required=False, help_text="UTC; empty: up to now.")
    #: Not `action`: the admin posts the chosen admin action under that name.
    event_action = forms.CharField(
        required=False, max_length=64, label="Action", help_text="Only this action, e.g. order.place."
    )
    actor = forms.CharField(required=False, max_length=150, help_text="Only this actor (username, key prefix).")


def _export(request, data: dict) -> str:
    from reports.exports import export_submit  # reports depends on audit, not the other way round

    filters = {"start": data["start"], "end": data["end"], "action": data["event_action"], "actor": data["actor"]}
    job = export_submit(user=request.user, dataset="audit", format=data["format"], filters=filters)
    return f"The export is running as job {job.pk}: download it from the portal's Reports page when it is done."
