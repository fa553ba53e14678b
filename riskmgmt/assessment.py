"""An account's risk at a glance (the portal's risk page, `GET risk/assessment`, `GET risk/limits`):
exposure per instrument, concentration, leverage, the limits that apply and how close each is,
the last VaR, and a risk score with warnings.

The risk score (0–100) is a seed formula, documented so that a trader can read it:

    score = 100 × (0.25 C + 0.25 L + 0.30 U + 0.20 V)

- C, concentration: the largest position's share of the gross exposure (0–1);
- L, leverage: gross exposure / equity, divided by 2 and capped at 1 (2× or more scores in full);
- U, limit usage: the highest usage of a limit with a usage (position, open orders, daily loss),
  capped at 1;
- V, VaR: the last successful run's VaR as a share of equity, divided by 10 % and capped at 1.

Level: below 34 low, below 67 medium, else high. Equity is the account's portfolio value
(`trading.analytics.portfolio_summary`); without equity the leverage and VaR parts count in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from riskmgmt.checks import limits_effective
from riskmgmt.models import VarRun
from riskmgmt.selectors import kill_switch_engaged
from trading.analytics import portfolio_summary
from trading.models import Position, TradingAccount
from trading.selectors import open_order_count, realized_pnl_today

ZERO = Decimal(0)
#: Weights of the score's parts (module docstring).
SCORE_WEIGHTS = {
    "concentration": Decimal("0.25"),
    "leverage": Decimal("0.25"),
    "limits": Decimal("0.30"),
    "var": Decimal("0.20"),
}
#: Warnings fire at these values.
CONCENTRATION_WARNING = Decimal("0.5")
LEVERAGE_WARNING = Decimal(1)
LIMIT_USAGE_WARNING = Decimal("0.8")
VAR_SHARE_WARNING = Decimal("0.05")
VAR_SHARE_FULL_SCORE = Decimal("0.10")


@dataclass(frozen=True)
class Exposure:
    symbol: str
    quantity: Decimal
    price: Decimal
    exposure: Decimal
    share: Decimal


@dataclass(frozen=True)
class LimitUsage:
    """A limit that applies to the account (the tightest over venue, instrument and account rows)
    and, where it caps a quantity the account holds, how much of it is used (None: no usage)."""

    limit: str
    scope: str
    value: Decimal
    used: Decimal | None
    usage: Decimal | None


@dataclass(frozen=True)
class RiskAssessment:
    account_id: int
    currency: str
    equity: Decimal
    gross_exposure: Decimal
    net_exposure: Decimal
    leverage: Decimal | None
    concentration: Decimal
    exposures: list[Exposure]
    limits: list[LimitUsage]
    kill_switch_engaged: bool
    last_var: VarRun | None
    score: int
    level: str
    warnings: list[str]


def risk_limits_of(account: TradingAccount) -> list[LimitUsage]:
    """Every limit that applies to the account: account-wide ones, and per instrument it holds
    a position in (or has a limit for) the instrument's ones, with their usage."""
    rows: list[LimitUsage] = []
    account_wide = limits_effective(account_id=account.pk, instrument_id=None)
    if account_wide.max_open_orders is not None:
        used = Decimal(open_order_count(account_id=account.pk))
        rows.append(_usage("max_open_orders", "account", Decimal(account_wide.max_open_orders), used))
    if account_wide.daily_loss_limit is not None:
        loss = max(ZERO, -realized_pnl_today(account_id=account.pk))
        rows.append(_usage("daily_loss_limit", "account", account_wide.daily_loss_limit, loss))
    for position in Position.objects.filter(account=account).exclude(quantity=0).select_related("instrument"):
        limits = limits_effective(account_id=account.pk, instrument_id=position.instrument_id)
        symbol = position.instrument.symbol
        if limits.max_position_qty is not None:
            rows.append(_usage("max_position_qty", symbol, limits.max_position_qty, abs(position.quantity)))
        for name in ("max_order_qty", "max_order_notional"):
            value = getattr(limits, name)
            if value is not None and value != getattr(account_wide, name):
                rows.append(LimitUsage(name, symbol, value, None, None))
        if limits.price_band_pct != account_wide.price_band_pct:
            rows.append(LimitUsage("price_band_pct", symbol, limits.price_band_pct, None, None))
    for name in ("max_order_qty", "max_order_notional", "price_band_pct"):
        value = getattr(account_wide, name)
        if value is not None:
            rows.append(LimitUsage(name, "account", value, None, None))
    return rows


def risk_assessment(account: TradingAccount) -> RiskAssessment:
    summary = portfolio_summary(account=account)
    exposures = _exposures(account)
    gross = sum((abs(row.exposure) for row in exposures), ZERO)
    net = sum((row.exposure for row in exposures), ZERO)
    equity = summary.total_value
    leverage = (gross / equity).quantize(Decimal("0.0001")) if equity > 0 else None
    concentration = max((row.share for row in exposures), default=ZERO)
    limits = risk_limits_of(account)
    engaged = kill_switch_engaged(account=account)
    last_var = (
        VarRun.objects.filter(account=account, var__isnull=False).select_related("job").order_by("-created_at").first()
    )
    parts = _score_parts(equity, leverage, concentration, limits, last_var)
    weighted = sum((SCORE_WEIGHTS[name] * value for name, value in parts.items()), ZERO)
    score = int((100 * weighted).to_integral_value())
    return RiskAssessment(
        account_id=account.pk,
        currency=summary.valuation_asset,
        equity=equity,
        gross_exposure=gross,
        net_exposure=net,
        leverage=leverage,
        concentration=concentration,
        exposures=exposures,
        limits=limits,
        kill_switch_engaged=engaged,
        last_var=last_var,
        score=score,
        level="low" if score < 34 else "medium" if score < 67 else "high",
        warnings=_warnings(exposures, equity, leverage, limits, last_var, engaged),
    )


def _exposures(account: TradingAccount) -> list[Exposure]:
    positions = Position.objects.filter(account=account).exclude(quantity=0).select_related("instrument")
    valued = []
    for position in positions.order_by("instrument__symbol"):
        price = position.instrument.last_price or position.instrument.reference_price
        valued.append((position.instrument.symbol, position.quantity, price, position.quantity * price))
    gross = sum((abs(exposure) for *_, exposure in valued), ZERO)
    return [
        Exposure(
            symbol, quantity, price, exposure, (abs(exposure) / gross).quantize(Decimal("0.0001")) if gross else ZERO
        )
        for symbol, quantity, price, exposure in valued
    ]


def _usage(limit: str, scope: str, value: Decimal, used: Decimal) -> LimitUsage:
    usage = (used / value).quantize(Decimal("0.0001")) if value > 0 else None
    return LimitUsage(limit, scope, value, used, usage)


def _score_parts(
    equity: Decimal,
    leverage: Decimal | None,
    concentration: Decimal,
    limits: list[LimitUsage],
    last_var: VarRun | None,
) -> dict[str, Decimal]:
    one = Decimal(1)
    usage = max((row.usage for row in limits if row.usage is not None), default=ZERO)
    if last_var is None:
        var_part = ZERO
    elif equity > 0:
        var_part = min(one, max(ZERO, last_var.var or ZERO) / equity / VAR_SHARE_FULL_SCORE)
    else:
        var_part = one
    return {
        "concentration": concentration,
        "leverage": one if leverage is None and concentration else min(one, (leverage or ZERO) / 2),
        "limits": min(one, usage),
        "var": var_part,
    }


def _warnings(
    exposures: list[Exposure],
    equity: Decimal,
    leverage: Decimal | None,
    limits: list[LimitUsage],
    last_var: VarRun | None,
    kill_switch: bool,
) -> list[str]:
    warnings = []
    if kill_switch:
        warnings.append("A kill switch is engaged: new orders are refused.")
    for row in exposures:
        if len(exposures) > 1 and row.share > CONCENTRATION_WARNING:
            warnings.append(f"{row.symbol} is {row.share:.0%} of your gross exposure.")
    if leverage is not None and leverage > LEVERAGE_WARNING:
        warnings.append(f"Gross exposure is {leverage:.2f}× your equity.")
    for limit in limits:
        if limit.usage is not None and limit.usage >= LIMIT_USAGE_WARNING:
            warnings.append(f"{limit.limit} ({limit.scope}) is {limit.usage:.0%} used.")
    if last_var is not None and last_var.var is not None and equity > 0 and last_var.var / equity > VAR_SHARE_WARNING:
        warnings.append(
            f"The last VaR ({float(last_var.confidence):.0%}, {last_var.horizon_days} d) is "
            f"{last_var.var / equity:.1%} of equity."
        )
    if exposures and last_var is None:
        warnings.append("No VaR has been computed for this account yet.")
    return warnings
