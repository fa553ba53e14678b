"""Pre-trade risk configuration: limits at venue / instrument / account level, and kill switches.

Halts are the instrument's status (marketdata); the rules that read all of this live in
`riskmgmt.checks`, the writes in `riskmgmt.services`.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from marketdata.models import Instrument
from portal.decimals import AmountField
from trading.models import TradingAccount


class RiskLimit(models.Model):
    """Limits for a scope: venue-wide (no instrument, no account), one instrument, one
    account, or one account on one instrument. Every row that applies to an order counts;
    the tightest value of each limit wins. An empty field sets no limit at that level."""

    instrument = models.ForeignKey(Instrument, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(TradingAccount, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    #: "venue", "instrument:<id>", "account:<id>" or "account:<id>:instrument:<id>": one row per scope.
    scope_key = models.CharField(max_length=64, editable=False)
    price_band_pct = models.DecimalField(
        "price band (%)",
        max_digits=7,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="Limit prices further than this from the reference price are refused; market orders never "
        "execute beyond it.",
    )
    max_order_qty = AmountField(null=True, blank=True)
    max_order_notional = AmountField(null=True, blank=True)
    max_position_qty = AmountField(null=True, blank=True, help_text="Largest absolute net position.")
    max_open_orders = models.PositiveIntegerField(null=True, blank=True)
    daily_loss_limit = AmountField(
        null=True, blank=True, help_text="New orders are refused once today's realized loss (UTC) reaches this."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["scope_key"], name="risk_limit_unique_scope"),
            models.CheckConstraint(
                condition=Q(price_band_pct__isnull=True) | Q(price_band_pct__gt=0, price_band_pct__lt=100),
                name="risk_limit_price_band_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Limits for {self.scope_label}"

    def save(self, *args, **kwargs):
        self.scope_key = risk_limit_scope_key(account_id=self.account_id, instrument_id=self.instrument_id)
        super().save(*args, **kwargs)

    @property
    def scope_label(self) -> str:
        if self.account_id and self.instrument_id:
            return f"account {self.account} on {self.instrument}"
        if self.account_id:
            return f"account {self.account}"
        if self.instrument_id:
            return f"instrument {self.instrument}"
        return "the venue"


class KillSwitch(models.Model):
    """An engaged kill switch blocks new orders in its scope (the venue, or one account)
    until released; engaging it cancels every open order in scope."""

    account = models.ForeignKey(TradingAccount, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    #: "venue" or "account:<id>": one engaged switch per scope.
    scope_key = models.CharField(max_length=32, editable=False)
    reason = models.CharField(max_length=255)
    engaged_by = models.CharField(max_length=150)
    engaged_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.CharField(max_length=150, blank=True)
    release_reason = models.CharField(max_length=255, blank=True)
    canceled_orders = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-engaged_at", "-id"]
        verbose_name_plural = "kill switches"
        constraints = [
            models.UniqueConstraint(
                fields=["scope_key"], condition=Q(released_at__isnull=True), name="one_engaged_kill_switch_per_scope"
            )
        ]

    def __str__(self) -> str:
        scope = f"account {self.account}" if self.account_id else "venue"
        state = "released" if self.released_at else "ENGAGED"
        return f"Kill switch ({scope}): {state}"

    @property
    def is_engaged(self) -> bool:
        return self.released_at is None


def risk_limit_scope_key(*, account_id: int | None, instrument_id: int | None) -> str:
    parts = ([f"account:{account_id}"] if account_id else []) + (
        [f"instrument:{instrument_id}"] if instrument_id else []
    )
    return ":".join(parts) or "venue"


class VarRun(models.Model):
    """A Value-at-Risk run of one account: its inputs as they were when it was asked for (the
    positions and their prices, the window of daily candles, method, confidence, horizon,
    lookback, paths, seed, NumPy's version, a digest of the returns matrix), so it can be
    repeated and checked; and, once its job succeeded, its figures and backtest."""

    job = models.OneToOneField("portal.Job", on_delete=models.PROTECT, related_name="var_run")
    account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT, related_name="+")
    method = models.CharField(max_length=12)
    confidence = models.DecimalField(max_digits=6, decimal_places=5)
    horizon_days = models.PositiveSmallIntegerField()
    lookback_days = models.PositiveSmallIntegerField()
    paths = models.PositiveIntegerField(null=True, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    currency = models.CharField(max_length=16, help_text="The quote asset every exposure is valued in.")
    positions = models.JSONField(help_text="[{symbol, quantity, price, exposure}] at the time of the request.")
    window_start = models.DateField(help_text="Open day of the first daily close used.")
    window_end = models.DateField(help_text="Open day of the last daily close used.")
    returns_digest = models.CharField(max_length=64, help_text="SHA-256 of the daily log-returns matrix.")
    numpy_version = models.CharField(max_length=32)
    var = AmountField(null=True, blank=True)
    es = AmountField(null=True, blank=True)
    pnl_mean = AmountField(null=True, blank=True)
    pnl_std = AmountField(null=True, blank=True)
    scenarios = models.PositiveIntegerField(null=True, blank=True)
    histogram = models.JSONField(null=True, blank=True, help_text="{edges, counts} of the scenario P&L.")
    backtest = models.JSONField(null=True, blank=True, help_text="Breaches of the one-day VaR and Kupiec's test.")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "-created_at"], name="var_run_account_recent_idx")]

    def __str__(self) -> str:
        return f"VaR {self.method} {self.confidence} {self.horizon_days}d of account {self.account_id}"
