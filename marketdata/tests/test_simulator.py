"""The simulator moves the market through the engine's services, and only one drives an instrument."""

from __future__ import annotations

import dataclasses
import threading
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from audit.models import AuditEvent
from marketdata.models import Candle, Instrument, InstrumentStatus
from marketdata.simulator import (
    MAKER_USERNAME,
    SIMULATOR_ACTOR,
    Simulator,
    SimulatorSettings,
    instrument_claims,
)
from trading.choices import OPEN_STATUSES, Side
from trading.models import LedgerEntry, Order, Trade
from trading.tests.fixtures import assert_reconciled

FAST = SimulatorSettings(
    step_seconds=0.0,
    volatility=3.0,
    drift=0.0,
    maker_levels=4,
    maker_step_bps=5,
    maker_quote_notional=500,
    maker_requote_bps=10,
    noise_orders_per_minute=10_000,  # every step
    noise_notional=200,
)


def test_the_simulator_walks_quotes_and_trades_through_the_engine(market):
    references = {i.symbol: i.reference_price for i in Instrument.objects.all()}
    # Steps of 1 s (taken back to back): the walk moves; a step of 0 s would leave it flat.
    simulator = Simulator(seed=42, config=dataclasses.replace(FAST, step_seconds=1.0))
    for _ in range(40):
        simulator.step()
    simulator.config = dataclasses.replace(simulator.config, noise_orders_per_minute=0)
    simulator.step()  # the maker's ladder after a step without noise: whole on both sides
    simulator.claims.release()
    moved = {i.symbol: i.reference_price for i in Instrument.objects.all()}
    assert moved != references
    for instrument in Instrument.objects.all():
        quotes = Order.objects.filter(
            account__owner__username=MAKER_USERNAME, instrument=instrument, status__in=OPEN_STATUSES
        )
        bids = [o.price for o in quotes if o.side == Side.BUY]
        asks = [o.price for o in quotes if o.side == Side.SELL]
        assert bids and asks and max(bids) < min(asks)
        reference = instrument.reference_price
        assert min(bids) > reference * Decimal("0.99") and max(asks) < reference * Decimal("1.01")
    assert Trade.objects.count() > 10
    assert Candle.objects.filter(interval="1m").exists()
    assert LedgerEntry.objects.filter(kind="DEPOSIT", reason="simulator top-up").exists()
    assert_reconciled()


def test_a_halted_instrument_is_left_alone(market):
    Instrument.objects.filter(pk=market.ethusdt.pk).update(status=InstrumentStatus.HALT)
    simulator = Simulator(seed=1, config=FAST)
    for _ in range(5):
        simulator.step()
    simulator.claims.release()
    assert not Order.objects.filter(instrument=market.ethusdt).exists()
    assert Instrument.objects.get(pk=market.ethusdt.pk).reference_price == market.ethusdt.reference_price
    assert Order.objects.filter(instrument=market.btcusdt).exists()


@pytest.mark.django_db(transaction=True)
def test_only_one_simulator_drives_an_instrument_until_it_lets_go(market):
    first = instrument_claims()
    assert first.claim([market.btcusdt.pk]) == {market.btcusdt.pk}
    seen: dict[str, set[int]] = {}

    def other(label: str) -> None:
        try:
            seen[label] = instrument_claims().claim([market.btcusdt.pk, market.ethusdt.pk])
        finally:
            connection.close()

    thread = threading.Thread(target=other, args=("while held",))
    thread.start()
    thread.join()
    assert seen["while held"] == {market.ethusdt.pk}  # its own connection: BTCUSDT is taken
    first.release()
    thread = threading.Thread(target=other, args=("after release",))
    thread.start()
    thread.join()
    assert seen["after release"] == {market.btcusdt.pk, market.ethusdt.pk}


def test_run_simulator_steps_and_names_what_it_drove(market, capsys, settings):
    settings.SIMULATOR_STEP_SECONDS = 0.0
    call_command("run_simulator", "--steps", "3", "--seed", "7", "--symbol", "btcusdt")
    assert "3 steps; drove BTCUSDT" in capsys.readouterr().out
    assert not Order.objects.filter(instrument=market.ethusdt).exists()
    placed = AuditEvent.objects.filter(action="order.place", actor_label=SIMULATOR_ACTOR)
    assert placed.exists() and placed.count() == Order.objects.exclude(status="REJECTED").count()
