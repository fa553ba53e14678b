"""Read-only audit log in the admin: filters, search, and the full event on its page."""

from django.contrib import admin

from audit.admin_mixins import ReadOnlyAdmin
from audit.models import AuditEvent


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
