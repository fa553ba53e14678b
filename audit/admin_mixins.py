"""Makes every Django admin add / change / delete one audit event with before and after."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models

from audit.services import audit_record

#: Field names whose values never enter the audit log.
REDACTED_FIELDS = {"password", "hashed_key", "key"}


def _snapshot(obj: models.Model, field_names: list[str] | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field_names is not None and field.name not in field_names:
            continue
        values[field.name] = "<redacted>" if field.name in REDACTED_FIELDS else field.value_from_object(obj)
    if obj.pk is not None:
        for field in obj._meta.many_to_many:
            if field_names is None or field.name in field_names:
                values[field.name] = sorted(related.pk for related in getattr(obj, field.name).all())
    return values


class ReadOnlyAdmin(admin.ModelAdmin):
    """An admin that shows rows and never adds, changes or deletes them (logs, ledgers)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AuditedAdminMixin(admin.ModelAdmin):
    """Mix into a ModelAdmin (before admin.ModelAdmin) to audit its edits in their transaction."""

    def save_model(self, request, obj, form, change):
        changed = list(form.changed_data)
        before = None
        if change:
            before = _snapshot(type(obj)._default_manager.get(pk=obj.pk), changed)
        super().save_model(request, obj, form, change)
        request._audit_pending = (obj, change, before, changed)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj, change, before, changed = request._audit_pending
        audit_record(
            action="admin.change" if change else "admin.add",
            actor=request.user,
            target=obj,
            before=before,
            after=_snapshot(obj, changed if change else None),
        )

    def delete_model(self, request, obj):
        audit_record(action="admin.delete", actor=request.user, target=obj, before=_snapshot(obj))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            audit_record(action="admin.delete", actor=request.user, target=obj, before=_snapshot(obj))
        super().delete_queryset(request, queryset)
