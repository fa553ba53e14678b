"""Admin of venues, assets and instruments: operators create instruments, edit their filters,
and halt or resume them (with a reason, through riskmgmt's service); candles are read-only."""

from django.contrib import admin

from audit.admin_mixins import AuditedAdminMixin, ReadOnlyAdmin
from marketdata.models import Asset, Candle, Instrument, InstrumentStatus, InstrumentStatusChange, Venue
from portal.admin_actions import ReasonForm, action_with_form
from riskmgmt.services import instrument_status_set


@admin.register(Venue)
class VenueAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["code", "name", "created_at"]


@admin.register(Asset)
class AssetAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["code", "name", "precision"]
    search_fields = ["code", "name"]


class StatusChangeInline(admin.TabularInline):
    model = InstrumentStatusChange
    extra = 0
    can_delete = False
    fields = ("changed_at", "from_status", "to_status", "reason", "changed_by")
    readonly_fields = ("changed_at", "from_status", "to_status", "reason", "changed_by")

    def has_add_permission(self, request, obj=None):
        return False


class HaltForm(ReasonForm):
    from django import forms

    status = forms.ChoiceField(choices=[(InstrumentStatus.HALT, "Halt"), (InstrumentStatus.BREAK, "Break")])


@admin.register(Instrument)
class InstrumentAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "symbol",
        "status",
        "reference_price",
        "last_price",
        "tick_size",
        "lot_size",
        "min_notional",
        "maker_fee_rate",
        "taker_fee_rate",
    ]
    list_filter = ["status", "venue"]
    search_fields = ["symbol"]
    readonly_fields = ["status", "status_reason", "last_price", "last_trade_at", "created_at", "updated_at"]
    inlines = [StatusChangeInline]
    actions = ["halt", "resume"]

    @admin.action(description="Halt selected instruments (reason required)")
    def halt(self, request, queryset):
        def apply(data):
            for instrument in queryset:
                instrument_status_set(
                    instrument=instrument, status=data["status"], reason=data["reason"], actor=request.user
                )
            return f"Halted {queryset.count()} instrument(s)."

        return action_with_form(self, request, queryset, title="Halt instruments", form_class=HaltForm, apply=apply)

    @admin.action(description="Resume trading of selected instruments (reason required)")
    def resume(self, request, queryset):
        def apply(data):
            for instrument in queryset:
                instrument_status_set(
                    instrument=instrument, status=InstrumentStatus.TRADING, reason=data["reason"], actor=request.user
                )
            return f"Resumed {queryset.count()} instrument(s)."

        return action_with_form(self, request, queryset, title="Resume instruments", form_class=ReasonForm, apply=apply)


@admin.register(Candle)
class CandleAdmin(ReadOnlyAdmin):
    list_display = ["instrument", "interval", "open_time", "open", "high", "low", "close", "volume", "trade_count"]
    list_filter = ["interval", "instrument"]
    date_hierarchy = "open_time"
    list_select_related = ["instrument"]
