"""Portal page of the trader's dashboard: portfolio value and allocation, positions, trading
stats over a chosen period, recent orders. The numbers come from `trading.analytics`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone

from portal.errors import DomainError
from portal.web.trading_views import current_account, own_accounts
from trading import analytics

#: Preset periods of the chooser: the last N days up to now.
PRESET_DAYS = {"7d": 7, "30d": 30, "90d": 90}
CUSTOM = "custom"
DEFAULT_PRESET = "30d"
PERIOD_CHOICES = [("7d", "Last 7 days"), ("30d", "Last 30 days"), ("90d", "Last 90 days"), (CUSTOM, "Custom")]
#: Segment colours of the allocation chart, in order of value (repeated past the last).
PALETTE = ["#3fb68b", "#4e8ff7", "#d29922", "#a371f7", "#e5534b", "#39c5cf", "#db61a2", "#8b98a5"]


class DashboardPeriodForm(forms.Form):
    """The stats' period: a preset, or custom whole days from `start` to `end`, both included."""

    period = forms.ChoiceField(
        choices=PERIOD_CHOICES,
        required=False,
        widget=forms.Select(attrs={"data-period-select": "", "data-testid": "period-select"}),
    )
    start = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date", "data-testid": "period-start"})
    )
    end = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date", "data-testid": "period-end"})
    )

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if data.get("period") != CUSTOM:
            return data
        for name in ("start", "end"):
            if data.get(name) is None and name not in self.errors:
                self.add_error(name, "Required for a custom period.")
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            # Checked here on the days: the end day is included (its bound is the next midnight),
            # so an end one day before the start would otherwise pass as an empty period.
            self.add_error("end", "Must not be before the start.")
        return data

    def bounds(self, *, now: datetime) -> tuple[datetime, datetime]:
        """[start, end) of the chosen period (call after `is_valid`)."""
        data = self.cleaned_data
        if data.get("period") == CUSTOM:
            start = datetime.combine(data["start"], time.min, tzinfo=UTC)
            return start, datetime.combine(data["end"] + timedelta(days=1), time.min, tzinfo=UTC)
        return now - timedelta(days=PRESET_DAYS[data.get("period") or DEFAULT_PRESET]), now

    def label(self) -> str:
        data = self.cleaned_data
        if data.get("period") == CUSTOM:
            return f"{data['start']:%Y-%m-%d} to {data['end']:%Y-%m-%d}"
        return dict(PERIOD_CHOICES)[data.get("period") or DEFAULT_PRESET]


@dataclass(frozen=True)
class AllocationSegment:
    """One asset's arc of the allocation donut, on a circle whose path length is 100 (so both
    are percentages): `dasharray` draws its share then the gap, `dashoffset` starts it where
    the previous arc ended."""

    asset: str
    value: Decimal
    percent: Decimal
    color: str
    dasharray: str
    dashoffset: str


def allocation_segments(summary: analytics.PortfolioSummary) -> list[AllocationSegment]:
    """The valued assets as donut arcs, the most valuable first from twelve o'clock. Arcs use
    the exact shares (so they close the circle); labels show the rounded percentages."""
    segments: list[AllocationSegment] = []
    if not summary.total_value:
        return segments
    start = 0.0
    for holding in summary.assets:
        if not holding.value or holding.allocation_pct is None:
            continue
        share = float(holding.value / summary.total_value * 100)
        segments.append(
            AllocationSegment(
                asset=holding.asset,
                value=holding.value,
                percent=holding.allocation_pct,
                color=PALETTE[len(segments) % len(PALETTE)],
                dasharray=f"{share:.3f} {100 - share:.3f}",
                dashoffset=f"{(100 - start) % 100:.3f}",
            )
        )
        start += share
    return segments


@login_required
def dashboard(request):
    account = current_account(request)
    form = DashboardPeriodForm(request.GET if "period" in request.GET else {"period": DEFAULT_PRESET})
    context: dict = {"account": account, "accounts": own_accounts(request.user), "form": form}
    if account is None:
        return render(request, "portal/dashboard.html", context)
    summary = analytics.portfolio_summary(account=account)
    context.update(
        {
            "summary": summary,
            "segments": allocation_segments(summary),
            "unvalued_assets": [holding for holding in summary.assets if holding.value is None],
            "recent_orders": analytics.recent_orders(account=account),
        }
    )
    if form.is_valid():
        start, end = form.bounds(now=timezone.now())
        try:
            context["stats"] = analytics.trading_stats(account=account, start=start, end=end)
            context["period_label"] = form.label()
        except DomainError as error:
            field = next(iter(error.errors or {}), None)
            form.add_error(field if field in form.fields else None, error.message)
    return render(request, "portal/dashboard.html", context, status=400 if form.errors else 200)
