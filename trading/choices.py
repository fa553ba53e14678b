"""Enumerations of the trading engine, in Binance spot vocabulary."""

from django.db import models


class AccountKind(models.TextChoices):
    TRADER = "TRADER", "Trader"
    MARKET_MAKER = "MARKET_MAKER", "Market maker"
    FEE = "FEE", "Venue fee account"


class SelfTradePrevention(models.TextChoices):
    EXPIRE_TAKER = "EXPIRE_TAKER", "Expire taker"
    EXPIRE_MAKER = "EXPIRE_MAKER", "Expire maker"
    EXPIRE_BOTH = "EXPIRE_BOTH", "Expire both"


class Side(models.TextChoices):
    BUY = "BUY", "Buy"
    SELL = "SELL", "Sell"


class OrderType(models.TextChoices):
    LIMIT = "LIMIT", "Limit"
    MARKET = "MARKET", "Market"
    LIMIT_MAKER = "LIMIT_MAKER", "Limit maker (post-only)"
    STOP_LOSS = "STOP_LOSS", "Stop loss (market)"
    STOP_LOSS_LIMIT = "STOP_LOSS_LIMIT", "Stop loss limit"
    TAKE_PROFIT = "TAKE_PROFIT", "Take profit (market)"
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT", "Take profit limit"


#: Types that wait for the last trade price to reach their stop price.
STOP_TYPES = frozenset(
    {OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT}
)
#: Types that execute as a market order (no limit price).
MARKET_TYPES = frozenset({OrderType.MARKET, OrderType.STOP_LOSS, OrderType.TAKE_PROFIT})
#: Types that carry a limit price.
LIMIT_TYPES = frozenset(
    {OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT}
)


class TimeInForce(models.TextChoices):
    GTC = "GTC", "Good till canceled"
    IOC = "IOC", "Immediate or cancel"
    FOK = "FOK", "Fill or kill"


class OrderStatus(models.TextChoices):
    NEW = "NEW", "New"
    PARTIALLY_FILLED = "PARTIALLY_FILLED", "Partially filled"
    FILLED = "FILLED", "Filled"
    CANCELED = "CANCELED", "Canceled"
    REJECTED = "REJECTED", "Rejected"
    EXPIRED = "EXPIRED", "Expired"


OPEN_STATUSES = (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class LedgerKind(models.TextChoices):
    DEPOSIT = "DEPOSIT", "Deposit"
    WITHDRAWAL = "WITHDRAWAL", "Withdrawal"
    LOCK = "LOCK", "Lock for an order"
    UNLOCK = "UNLOCK", "Unlock from an order"
    TRADE = "TRADE", "Trade settlement"
    FEE = "FEE", "Trading fee"
    ADJUSTMENT = "ADJUSTMENT", "Adjustment"


class StrategyStatus(models.TextChoices):
    STOPPED = "stopped", "Stopped"
    RUNNING = "running", "Running"
    ERROR = "error", "Stopped by an error"
    FINISHED = "finished", "Finished its work"
