"""Admin of risk: limits per scope (saved through the audited service) and kill switches
(adding one engages it; release is an action with a reason)."""

from django import forms
from django.contrib import admin

from portal.admin_actions import ReasonForm, action_with_form
from riskmgmt.checks import LIMIT_FIELDS
from riskmgmt.models import KillSwitch, RiskLimit
from riskmgmt.services import kill_switch_engage, kill_switch_release, risk_limit_delete, risk_limit_set


@admin.register(RiskLimit)
class RiskLimitAdmin(admin.ModelAdmin):
    list_display = ["scope_key", "instrument", "account", *LIMIT_FIELDS, "updated_at"]
    list_select_related = ["instrument", "account"]
    fields = ["instrument", "account", *LIMIT_FIELDS]

    def get_readonly_fields(self, request, obj=None):
        return ["instrument", "account"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        limit = risk_limit_set(
            actor=request.user,
            account=obj.account,
            instrument=obj.instrument,
            values={name: getattr(obj, name) for name in LIMIT_FIELDS},
        )
        obj.pk, obj.scope_key = limit.pk, limit.scope_key

    def delete_model(self, request, obj):
        risk_limit_delete(limit=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for limit in queryset:
            risk_limit_delete(limit=limit, actor=request.user)


class KillSwitchForm(forms.ModelForm):
    class Meta:
        model = KillSwitch
        fields = ["account", "reason"]
        help_texts = {"account": "Leave empty to stop the whole venue."}

    def clean(self):
        cleaned = super().clean() or {}
        account = cleaned.get("account")
        scope_key = f"account:{account.pk}" if account else "venue"
        if KillSwitch.objects.filter(scope_key=scope_key, released_at__isnull=True).exists():
            raise forms.ValidationError("A kill switch is already engaged for this scope; release it first.")
        return cleaned


@admin.register(KillSwitch)
class KillSwitchAdmin(admin.ModelAdmin):
    form = KillSwitchForm
    list_display = [
        "id",
        "scope_key",
        "is_engaged",
        "reason",
        "engaged_by",
        "engaged_at",
        "canceled_orders",
        "released_at",
    ]
    list_filter = ["released_at"]
    actions = ["release"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(boolean=True, description="engaged")
    def is_engaged(self, switch):
        return switch.is_engaged

    def save_model(self, request, obj, form, change):
        switch = kill_switch_engage(account=obj.account, reason=obj.reason, actor=request.user)
        obj.pk = switch.pk

    @admin.action(description="Release selected kill switches (reason required)")
    def release(self, request, queryset):
        def apply(data):
            engaged = [switch for switch in queryset if switch.is_engaged]
            for switch in engaged:
                kill_switch_release(switch=switch, reason=data["reason"], actor=request.user)
            return f"Released {len(engaged)} kill switch(es)."

        return action_with_form(
            self, request, queryset, title="Release kill switches", form_class=ReasonForm, apply=apply
        )
