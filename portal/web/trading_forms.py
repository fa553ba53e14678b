"""Forms of the portal's trade page: the order ticket and the order history filters."""

from __future__ import annotations

import uuid

from django import forms

from marketdata.models import Instrument
from trading.choices import OrderStatus, OrderType, Side, TimeInForce

#: Where a service reason code belongs on the ticket (others are shown above the form).
FIELD_OF_CODE = {
    "TICK_SIZE": "price",
    "PRICE_BAND": "price",
    "PRICE_REQUIRED": "price",
    "PRICE_NOT_ALLOWED": "price",
    "LIMIT_MAKER_WOULD_CROSS": "price",
    "LOT_SIZE": "quantity",
    "MIN_NOTIONAL": "quantity",
    "INVALID_QUANTITY": "quantity",
    "QUANTITY_REQUIRED": "quantity",
    "MAX_ORDER_QTY": "quantity",
    "QUOTE_QUANTITY_NOT_ALLOWED": "quote_quantity",
    "STOP_PRICE_REQUIRED": "stop_price",
    "STOP_PRICE_NOT_ALLOWED": "stop_price",
    "WOULD_TRIGGER_IMMEDIATELY": "stop_price",
    "INVALID_TIME_IN_FORCE": "time_in_force",
    "DUPLICATE_CLIENT_ORDER_ID": "client_order_id",
}


def _amount(label: str, **kwargs) -> forms.DecimalField:
    return forms.DecimalField(label=label, required=False, max_digits=28, decimal_places=8, **kwargs)


class OrderTicketForm(forms.Form):
    """One order. The instrument's filters become the inputs' step / min / max, so the browser
    flags an off-tick price before sending; the engine checks every rule again."""

    form_token = forms.CharField(widget=forms.HiddenInput, max_length=64)
    side = forms.ChoiceField(choices=Side.choices, widget=forms.RadioSelect, initial=Side.BUY)
    type = forms.ChoiceField(choices=OrderType.choices, initial=OrderType.LIMIT)
    quantity = _amount("Quantity")
    quote_quantity = _amount("Quote amount", help_text="MARKET only: spend (buy) or receive (sell) this much.")
    price = _amount("Price")
    stop_price = _amount("Stop price")
    time_in_force = forms.ChoiceField(
        choices=[("", "—"), *TimeInForce.choices], required=False, initial=TimeInForce.GTC, label="Time in force"
    )
    client_order_id = forms.RegexField(
        regex=r"^[A-Za-z0-9._:\-]{1,64}$", required=False, label="Client order id", max_length=64
    )

    def __init__(self, *args, instrument: Instrument, **kwargs):
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("form_token", uuid.uuid4().hex)
        super().__init__(*args, **kwargs)
        tick, lot, least, most, notional = (
            f"{value.normalize():f}"
            for value in (
                instrument.tick_size,
                instrument.lot_size,
                instrument.min_qty,
                instrument.max_qty,
                instrument.min_notional,
            )
        )
        for name in ("price", "stop_price"):
            self.fields[name].widget.attrs.update({"step": tick, "min": tick, "inputmode": "decimal"})
        self.fields["quantity"].widget.attrs.update({"step": lot, "min": least, "max": most})
        self.fields[
            "quantity"
        ].help_text = f"Multiple of {lot}, {least}–{most}; value at least {notional} {instrument.quote.code}."
        self.fields["price"].help_text = f"Multiple of {tick} {instrument.quote.code}."


class OrderHistoryFilterForm(forms.Form):
    symbol = forms.ModelChoiceField(
        queryset=Instrument.objects.order_by("symbol"), to_field_name="symbol", required=False, empty_label="All"
    )
    status = forms.ChoiceField(choices=[("", "All"), *OrderStatus.choices], required=False)
    side = forms.ChoiceField(choices=[("", "All"), *Side.choices], required=False)
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To")
