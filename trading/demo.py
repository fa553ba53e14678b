"""The demo market of a fresh install: venue, assets, four USDT pairs, funded demo accounts,
and a market maker's resting ladder so there is a book to trade against.

Idempotent: run it any number of times (`manage.py seed_demo`, called by `make run`).
Everything goes through the services, so the ledger, the audit log and the locks are
exactly as if operators and traders had done it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model

from marketdata.models import Asset, Instrument, Venue, tick_decimals
from portal.choices import Role
from portal.decimals import floor_to
from portal.users import demo_users_ensure, user_set_role
from riskmgmt.models import RiskLimit
from riskmgmt.services import risk_limit_set
from trading.choices import OPEN_STATUSES, AccountKind, OrderType, Side
from trading.models import Order, TradingAccount
from trading.order_rules import OrderRequest
from trading.services import account_create, deposit_create, fee_account_ensure, order_place

SEED_ACTOR = "seed-demo"
VENUE_CODE = "tradeport"
MARKET_MAKER_USERNAME = "market-maker"


@dataclass(frozen=True)
class InstrumentSpec:
    symbol: str
    base: str
    tick: str
    lot: str
    max_qty: str
    reference: str
    quote_size: str


ASSETS = {"USDT": "Tether USD", "BTC": "Bitcoin", "ETH": "Ether", "BNB": "BNB", "SOL": "Solana"}
INSTRUMENTS = [
    InstrumentSpec("BTCUSDT", "BTC", "0.01", "0.00001", "9000", "64000.00", "0.05"),
    InstrumentSpec("ETHUSDT", "ETH", "0.01", "0.0001", "9000", "3200.00", "1"),
    InstrumentSpec("BNBUSDT", "BNB", "0.01", "0.001", "9000", "590.00", "5"),
    InstrumentSpec("SOLUSDT", "SOL", "0.01", "0.001", "90000", "150.00", "20"),
]
#: What each demo trader account starts with.
TRADER_FUNDING = {"USDT": "100000", "BTC": "1", "ETH": "10", "BNB": "20", "SOL": "100"}
#: Below 10 million of anything: embedded mode's SQLite keeps 15 significant digits of a decimal
#: (Django stores them as binary floats there), which at 8 decimals is 7 digits before the point.
MAKER_FUNDING = {"USDT": "5000000", "BTC": "50", "ETH": "800", "BNB": "4000", "SOL": "15000"}
LADDER_LEVELS = 10
LADDER_STEP = Decimal("0.0005")  # 5 basis points between levels, first level half a step from the reference


def demo_market_seed() -> list:
    """Create whatever of the demo market is missing; returns the demo logins."""
    logins = demo_users_ensure()
    venue, _ = Venue.objects.get_or_create(code=VENUE_CODE, defaults={"name": "Tradeport Exchange"})
    fee_account_ensure(venue=venue)
    assets = {
        code: Asset.objects.get_or_create(code=code, defaults={"name": name, "precision": 8})[0]
        for code, name in ASSETS.items()
    }
    instruments = [_instrument_ensure(venue, assets, spec) for spec in INSTRUMENTS]
    if not RiskLimit.objects.filter(scope_key="venue").exists():
        risk_limit_set(actor=SEED_ACTOR, values={"price_band_pct": Decimal("10"), "max_open_orders": 500})
    User = get_user_model()
    for login in logins:
        if login.role != Role.TRADER:
            continue
        user = User.objects.get(username=login.username)
        for name, share in (("Main", Decimal(1)), ("Algo", Decimal("0.1"))):
            _funded_account(user, venue, assets, name, AccountKind.TRADER, TRADER_FUNDING, share)
    maker_user, created = User.objects.get_or_create(
        username=MARKET_MAKER_USERNAME, defaults={"first_name": "Market", "last_name": "Maker"}
    )
    if created:
        maker_user.set_unusable_password()
        maker_user.save()
        user_set_role(user=maker_user, role=Role.TRADER, actor=SEED_ACTOR)
    maker = _funded_account(maker_user, venue, assets, "Quotes", AccountKind.MARKET_MAKER, MAKER_FUNDING, Decimal(1))
    for instrument, spec in zip(instruments, INSTRUMENTS, strict=True):
        _ladder_ensure(maker, instrument, Decimal(spec.quote_size))
    return logins


def _instrument_ensure(venue: Venue, assets: dict[str, Asset], spec: InstrumentSpec) -> Instrument:
    tick = Decimal(spec.tick)
    instrument, _ = Instrument.objects.get_or_create(
        symbol=spec.symbol,
        defaults={
            "venue": venue,
            "base": assets[spec.base],
            "quote": assets["USDT"],
            "tick_size": tick,
            "price_precision": tick_decimals(tick),
            "lot_size": Decimal(spec.lot),
            "min_qty": Decimal(spec.lot),
            "max_qty": Decimal(spec.max_qty),
            "min_notional": Decimal("5"),
            "maker_fee_rate": Decimal("0.0008"),
            "taker_fee_rate": Decimal("0.001"),
            "reference_price": Decimal(spec.reference),
        },
    )
    return instrument


def _funded_account(user, venue, assets, name, kind, funding, share) -> TradingAccount:
    account = TradingAccount.objects.filter(owner=user, name=name).first()
    if account is not None:
        return account
    account = account_create(owner=user, venue=venue, name=name, kind=kind, actor=SEED_ACTOR)
    for code, amount in funding.items():
        deposit_create(
            account=account,
            asset=assets[code],
            amount=Decimal(amount) * share,
            reason="demo funding",
            actor=SEED_ACTOR,
        )
    return account


def _ladder_ensure(maker: TradingAccount, instrument: Instrument, size: Decimal) -> None:
    """Resting bids and asks around the reference price, unless the maker already quotes."""
    if Order.objects.filter(account=maker, instrument=instrument, status__in=OPEN_STATUSES).exists():
        return
    reference = instrument.reference_price
    for level in range(LADDER_LEVELS):
        offset = reference * LADDER_STEP * (Decimal(level) + Decimal("0.5"))
        for side, price in ((Side.BUY, reference - offset), (Side.SELL, reference + offset)):
            order_place(
                account=maker,
                instrument=instrument,
                request=OrderRequest(
                    side=side,
                    type=OrderType.LIMIT_MAKER,
                    quantity=floor_to(size * (1 + Decimal(level) / 4), instrument.lot_size),
                    price=floor_to(price, instrument.tick_size),
                ),
                actor=SEED_ACTOR,
            )
