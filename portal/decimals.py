"""Decimal storage shapes and rounding shared by every money-touching model and service.

Every quantity, price and amount is stored with 8 decimal places (the smallest unit of the
most precise asset we list); fee rates with 6. Rounding is always explicit and always in the
venue's favour only where a lock must cover a maximum (`ceil_to`), never on a payout.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from django.db import models

AMOUNT_PLACES = 8
AMOUNT_DIGITS = 28
AMOUNT_UNIT = Decimal(1).scaleb(-AMOUNT_PLACES)
ZERO = Decimal(0)


def AmountField(**kwargs) -> models.DecimalField:  # noqa: N802 - reads like a field class
    """A quantity, price or money amount: 28 digits, 8 of them decimals."""
    return models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, **kwargs)


def RateField(**kwargs) -> models.DecimalField:  # noqa: N802
    """A fee rate or a percentage factor: 6 decimal places (0.000100 = 1 basis point)."""
    return models.DecimalField(max_digits=9, decimal_places=6, **kwargs)


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    """The largest multiple of `step` not above `value`."""
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def ceil_to(value: Decimal, step: Decimal) -> Decimal:
    """The smallest multiple of `step` not below `value`."""
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def floor_amount(value: Decimal) -> Decimal:
    return value.quantize(AMOUNT_UNIT, rounding=ROUND_FLOOR)


def ceil_amount(value: Decimal) -> Decimal:
    return value.quantize(AMOUNT_UNIT, rounding=ROUND_CEILING)


def is_multiple_of(value: Decimal, step: Decimal) -> bool:
    return (value % step) == 0


def fits_storage(value: Decimal) -> bool:
    """True when `value` is finite and fits an AmountField without losing digits."""
    if not value.is_finite():
        return False
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -AMOUNT_PLACES and value != value.quantize(AMOUNT_UNIT):
        return False
    return abs(value) < Decimal(10) ** (AMOUNT_DIGITS - AMOUNT_PLACES)


def amount_text(value: Decimal) -> str:
    """An amount as the API writes it: fixed-point, 8 decimals, never exponent notation."""
    return format(value.quantize(AMOUNT_UNIT), "f")


def decimal_plain(value: Decimal) -> str:
    """A Decimal as people write it: no exponent, no trailing zeros (90, not 9E+1 nor 90.00000000)."""
    return format(value.normalize(), "f")
