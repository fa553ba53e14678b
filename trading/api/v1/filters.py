"""List filters of the trading API (django-filter)."""

import django_filters

from trading.choices import OPEN_STATUSES, LedgerKind, OrderStatus, OrderType, Side
from trading.models import LedgerEntry, Order, Trade


class OrderFilter(django_filters.FilterSet):
    account = django_filters.NumberFilter(field_name="account_id")
    symbol = django_filters.CharFilter(field_name="instrument__symbol", lookup_expr="iexact")
    status = django_filters.MultipleChoiceFilter(choices=OrderStatus.choices)
    side = django_filters.ChoiceFilter(choices=Side.choices)
    type = django_filters.ChoiceFilter(choices=OrderType.choices)
    open = django_filters.BooleanFilter(method="filter_open", help_text="true: only NEW / PARTIALLY_FILLED orders.")
    client_order_id = django_filters.CharFilter()
    strategy = django_filters.NumberFilter(field_name="strategy_id", help_text="Only the orders of this strategy.")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Order
        fields = ["account", "symbol", "status", "side", "type", "open", "client_order_id", "strategy"]

    def filter_open(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.filter(status__in=OPEN_STATUSES) if value else queryset.exclude(status__in=OPEN_STATUSES)


class TradeFilter(django_filters.FilterSet):
    account = django_filters.NumberFilter(method="filter_account")
    symbol = django_filters.CharFilter(field_name="instrument__symbol", lookup_expr="iexact")
    order = django_filters.NumberFilter(method="filter_order")
    strategy = django_filters.NumberFilter(method="filter_strategy", help_text="Only the fills of this strategy.")
    executed_after = django_filters.IsoDateTimeFilter(field_name="executed_at", lookup_expr="gte")
    executed_before = django_filters.IsoDateTimeFilter(field_name="executed_at", lookup_expr="lt")

    class Meta:
        model = Trade
        fields = ["account", "symbol", "order", "strategy"]

    def filter_account(self, queryset, name, value):
        from django.db.models import Q

        return queryset.filter(Q(maker_account_id=value) | Q(taker_account_id=value))

    def filter_order(self, queryset, name, value):
        from django.db.models import Q

        return queryset.filter(Q(maker_order_id=value) | Q(taker_order_id=value))

    def filter_strategy(self, queryset, name, value):
        from django.db.models import Q

        return queryset.filter(Q(maker_order__strategy_id=value) | Q(taker_order__strategy_id=value))


class LedgerFilter(django_filters.FilterSet):
    account = django_filters.NumberFilter(field_name="account_id")
    asset = django_filters.CharFilter(field_name="asset__code", lookup_expr="iexact")
    kind = django_filters.ChoiceFilter(choices=LedgerKind.choices)

    class Meta:
        model = LedgerEntry
        fields = ["account", "asset", "kind"]
