"""An instrument's filters must be consistent before anything trades on it."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

D = Decimal
pytestmark = pytest.mark.django_db


def test_a_trades_notional_must_fit_eight_decimals(market):
    instrument = market.btcusdt
    instrument.tick_size, instrument.price_precision, instrument.lot_size, instrument.min_qty = (
        D("0.00001"),
        5,
        D("0.0001"),
        D("0.0001"),
    )
    instrument.reference_price = D("100")
    with pytest.raises(ValidationError) as refused:
        instrument.full_clean()
    assert "lot_size" in refused.value.message_dict  # 5 + 4 decimals: price × quantity needs 9
    instrument.lot_size = instrument.min_qty = D("0.001")
    instrument.full_clean()  # 5 + 3 decimals fit
