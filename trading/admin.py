"""Admin of trading: accounts (deposits / withdrawals and kill switch as actions), and read-only
orders (cancel selected), trades, balances, positions, the ledger, strategies (stop selected)
and backtests. Money never moves by
editing a row here: every action goes through the services and the ledger."""

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from audit.admin_mixins import AuditedAdminMixin, ReadOnlyAdmin
from marketdata.models import Asset
from portal.admin_actions import ReasonForm, action_with_form
from riskmgmt.services import kill_switch_engage
from trading.choices import OPEN_STATUSES, StrategyStatus
from trading.models import (
    Backtest,
    Balance,
    LedgerEntry,
    Order,
    Position,
    Strategy,
    StrategyLogLine,
    Trade,
    TradingAccount,
)
from trading.services import deposit_create, order_cancel, withdrawal_create
from trading.strategies.services import strategy_stop


class TransferForm(forms.Form):
    direction = forms.ChoiceField(choices=[("deposit", "Deposit"), ("withdrawal", "Withdrawal")])
    asset = forms.ModelChoiceField(queryset=Asset.objects.all())
    amount = forms.DecimalField(max_digits=28, decimal_places=8, min_value=0)
    reason = forms.CharField(max_length=255, help_text="Kept in the ledger and the audit log.")


class BalanceInline(admin.TabularInline):
    model = Balance
    extra = 0
    can_delete = False
    fields = ("asset", "free", "locked", "updated_at")
    readonly_fields = ("asset", "free", "locked", "updated_at")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(TradingAccount)
class TradingAccountAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["id", "name", "owner", "kind", "stp_mode", "is_active", "created_at"]
    list_filter = ["kind", "is_active", "stp_mode"]
    search_fields = ["name", "owner__username"]
    autocomplete_fields = ["owner"]
    inlines = [BalanceInline]
    actions = ["transfer", "engage_kill_switch"]

    @admin.action(description="Deposit or withdraw (one account; reason required)")
    def transfer(self, request, queryset):
        def apply(data):
            if queryset.count() != 1:
                return "Select exactly one account for a deposit or withdrawal."
            service = deposit_create if data["direction"] == "deposit" else withdrawal_create
            applied = service(
                account=queryset.get(),
                asset=data["asset"],
                amount=data["amount"],
                reason=data["reason"],
                actor=request.user,
            )
            return (
                f"{data['direction'].capitalize()} of {data['amount']} {data['asset']} booked; free now {applied.free}."
            )

        return action_with_form(
            self, request, queryset, title="Deposit or withdraw", form_class=TransferForm, apply=apply
        )

    @admin.action(description="Engage the kill switch of selected accounts (cancels their open orders)")
    def engage_kill_switch(self, request, queryset):
        def apply(data):
            canceled = 0
            for account in queryset:
                canceled += kill_switch_engage(
                    account=account, reason=data["reason"], actor=request.user
                ).canceled_orders
            return f"Kill switch engaged for {queryset.count()} account(s); {canceled} open order(s) canceled."

        return action_with_form(self, request, queryset, title="Engage kill switch", form_class=ReasonForm, apply=apply)


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "instrument",
        "account",
        "side",
        "type",
        "price",
        "quantity",
        "executed_qty",
        "status",
        "reject_reason",
        "created_at",
    ]
    list_filter = ["status", "side", "type", "instrument", "account__kind"]
    search_fields = ["=id", "client_order_id", "account__name", "account__owner__username"]
    list_select_related = ["instrument", "account"]
    date_hierarchy = "created_at"
    actions = ["cancel_selected"]

    @admin.action(description="Cancel selected open orders")
    def cancel_selected(self, request, queryset):
        def apply(data):
            orders = list(queryset.filter(status__in=OPEN_STATUSES))
            for order in orders:
                order_cancel(order=order, actor=request.user, reason=data["reason"])
            return f"Canceled {len(orders)} open order(s); {queryset.count() - len(orders)} were no longer open."

        return action_with_form(self, request, queryset, title="Cancel orders", form_class=ReasonForm, apply=apply)

    def lookup_allowed(self, lookup, value, request=None):
        """A strategy's orders, from its row in the strategies' list."""
        return lookup == "strategy__id__exact" or super().lookup_allowed(lookup, value, request)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.has_perm("trading.change_order"):
            actions.pop("cancel_selected", None)
        return actions


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "instrument",
        "price",
        "quantity",
        "aggressor_side",
        "maker_order",
        "taker_order",
        "executed_at",
    ]
    list_filter = ["instrument", "aggressor_side"]
    search_fields = ["=id", "=maker_order__id", "=taker_order__id"]
    list_select_related = ["instrument"]
    date_hierarchy = "executed_at"


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = ["account", "asset", "free", "locked", "updated_at"]
    list_filter = ["asset"]
    search_fields = ["account__name", "account__owner__username"]
    list_select_related = ["account", "asset"]


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    list_display = ["account", "instrument", "quantity", "average_price", "realized_pnl", "fees_paid", "updated_at"]
    list_filter = ["instrument"]
    list_select_related = ["account", "instrument"]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "account",
        "asset",
        "kind",
        "free_delta",
        "locked_delta",
        "free_after",
        "locked_after",
        "reason",
        "created_at",
    ]
    list_filter = ["kind", "asset"]
    search_fields = ["account__name", "account__owner__username", "reason", "=order__id", "=trade__id"]
    list_select_related = ["account", "asset"]
    date_hierarchy = "created_at"


class StrategyLogInline(admin.TabularInline):
    model = StrategyLogLine
    fields = ("at", "level", "message")
    readonly_fields = ("at", "level", "message")
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["-id"]
    verbose_name_plural = "Log (newest first)"

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-id")


@admin.register(Strategy)
class StrategyAdmin(ReadOnlyAdmin):
    """Every trader's strategies, read-only; operators stop them (with a reason) from here, and
    follow a strategy's orders from its row."""

    list_display = [
        "id",
        "name",
        "owner",
        "kind",
        "instrument",
        "status",
        "position",
        "realized_pnl",
        "started_at",
        "stopped_at",
        "orders_link",
    ]
    list_filter = ["status", "kind", "instrument"]
    search_fields = ["=id", "name", "owner__username"]
    list_select_related = ["owner", "instrument"]
    inlines = [StrategyLogInline]
    actions = ["stop_selected"]

    @admin.display(description="Orders")
    def orders_link(self, strategy):
        url = reverse("admin:trading_order_changelist")
        return format_html('<a href="{}?strategy__id__exact={}">orders</a>', url, strategy.pk)

    @admin.action(description="Stop selected running strategies (their open orders are canceled)")
    def stop_selected(self, request, queryset):
        def apply(data):
            running = list(queryset.filter(status=StrategyStatus.RUNNING).select_related("owner"))
            for strategy in running:
                strategy_stop(strategy=strategy, actor=request.user, reason=f"by an operator: {data['reason']}")
            return f"Stopped {len(running)} strategy(ies); {queryset.count() - len(running)} were not running."

        return action_with_form(self, request, queryset, title="Stop strategies", form_class=ReasonForm, apply=apply)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.has_perm("trading.change_strategy"):
            actions.pop("stop_selected", None)
        return actions


@admin.register(Backtest)
class BacktestAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "owner",
        "kind",
        "instrument",
        "interval",
        "start",
        "end",
        "bars",
        "created_at",
        "finished_at",
    ]
    list_filter = ["kind", "instrument", "interval"]
    search_fields = ["=id", "name", "owner__username"]
    list_select_related = ["owner", "instrument"]
    date_hierarchy = "created_at"
