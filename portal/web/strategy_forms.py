"""Forms of the strategies pages: a strategy's definition, with the fields of its type's
parameters generated from the type's JSON Schema, and a backtest's period and money."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone

from marketdata.models import CandleInterval, Instrument
from trading.strategies.base import Strategy

#: Form fields of a type's parameters are named `param_<name>`.
PARAM_PREFIX = "param_"


def param_field(name: str, spec: dict[str, Any], required: bool) -> forms.Field:
    """The form field of one parameter, from its schema (integer, number, enum, or nullable)."""
    kinds = spec.get("type")
    nullable = isinstance(kinds, list) and "null" in kinds
    options: dict[str, Any] = {
        "label": name.replace("_", " ").capitalize(),
        "required": required and not nullable,
        "help_text": spec.get("description", ""),
        "initial": spec.get("default"),
    }
    if "enum" in spec:
        return forms.ChoiceField(choices=[(value, value) for value in spec["enum"]], **options)
    kind = kinds[0] if isinstance(kinds, list) else kinds
    bounds = {key: spec[limit] for key, limit in (("min_value", "minimum"), ("max_value", "maximum")) if limit in spec}
    if kind == "integer":
        return forms.IntegerField(**options, **bounds)
    return forms.FloatField(**options, **bounds)


class StrategyForm(forms.Form):
    name = forms.CharField(max_length=100)
    account = forms.TypedChoiceField(coerce=int)
    symbol = forms.ChoiceField()
    interval = forms.ChoiceField(choices=CandleInterval.choices, initial=CandleInterval.M1)
    max_position = forms.DecimalField(required=False, min_value=0, help_text="Base quantity held at most.")
    max_order_qty = forms.DecimalField(required=False, min_value=0, help_text="Base quantity of one order.")
    max_daily_loss = forms.DecimalField(
        required=False, min_value=0, help_text="Quote lost since 00:00 UTC; beyond, it only reduces."
    )

    def __init__(self, *args, kind: type[Strategy], accounts, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        account_field, symbol_field = self.fields["account"], self.fields["symbol"]
        assert isinstance(account_field, forms.ChoiceField) and isinstance(symbol_field, forms.ChoiceField)  # noqa: S101
        account_field.choices = [(account.pk, f"{account.name} (#{account.pk})") for account in accounts]
        symbols = Instrument.objects.order_by("symbol").values_list("symbol", flat=True)
        symbol_field.choices = [(symbol, symbol) for symbol in symbols]
        schema = kind.params_schema
        required = set(schema.get("required", []))
        for name, spec in schema.get("properties", {}).items():
            self.fields[PARAM_PREFIX + name] = param_field(name, spec, name in required)

    @property
    def param_fields(self):
        return [self[name] for name in self.fields if name.startswith(PARAM_PREFIX)]

    @property
    def definition_fields(self):
        return [self[name] for name in self.fields if not name.startswith(PARAM_PREFIX)]

    def params(self) -> dict[str, Any]:
        """The parameters given (an empty optional one left out: its default applies)."""
        return {
            name.removeprefix(PARAM_PREFIX): value
            for name, value in self.cleaned_data.items()
            if name.startswith(PARAM_PREFIX) and value not in (None, "")
        }

    def add_problem(self, errors: dict[str, list[str]] | None, message: str) -> None:
        """A service's refusal on its field (`params.fast` → the `fast` parameter's field)."""
        for key, texts in (errors or {}).items():
            field = PARAM_PREFIX + key.removeprefix("params.") if key.startswith("params.") else key
            if field in self.fields:
                for text in texts:
                    self.add_error(field, text)
                return
        self.add_error(None, message)


class BacktestForm(forms.Form):
    start = forms.DateTimeField(help_text="UTC, e.g. 2026-11-01 00:00.")
    end = forms.DateTimeField(help_text="UTC; candles opening before it.")
    starting_balance = forms.DecimalField(initial=10_000, min_value=0, help_text="Quote asset at the start.")
    slippage_bps = forms.DecimalField(
        initial=2, min_value=0, max_value=1000, help_text="Basis points on market orders."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        now = timezone.now().replace(second=0, microsecond=0)
        self.fields["start"].initial = now - timedelta(days=7)
        self.fields["end"].initial = now
