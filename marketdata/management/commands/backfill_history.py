"""`manage.py backfill_history --days N`: synthesized candle history for charts, VaR and backtests."""

from django.core.management.base import BaseCommand, CommandError

from marketdata.history import WalkParameters, history_backfill, history_backfill_daily
from marketdata.models import Instrument


class Command(BaseCommand):
    help = (
        "Synthesize N days of one-minute history per instrument and store the candles of every interval. "
        "The history ends where the instrument's record begins (its earliest candle, or its first trade, "
        "or now) at that price, so running it again extends the history backwards."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, required=True)
        parser.add_argument("--symbol", action="append", help="Only this symbol (repeatable); default: all.")
        parser.add_argument("--seed", type=int, default=None, help="The same seed gives the same history.")
        parser.add_argument("--volatility", type=float, default=WalkParameters.volatility, help="Yearly, e.g. 0.6.")
        parser.add_argument("--drift", type=float, default=WalkParameters.drift, help="Yearly, e.g. 0.05.")
        parser.add_argument(
            "--only-empty", action="store_true", help="Skip instruments that have candles already (make run)."
        )
        parser.add_argument(
            "--daily-days",
            type=int,
            default=0,
            help="Then this many daily candles before that history (cheap; VaR needs months of daily closes).",
        )

    def handle(
        self,
        *args,
        days: int,
        symbol,
        seed,
        volatility: float,
        drift: float,
        only_empty: bool,
        daily_days: int,
        **options,
    ):
        if days < 1:
            raise CommandError("--days must be at least 1.")
        instruments = Instrument.objects.order_by("symbol")
        if symbol:
            instruments = instruments.filter(symbol__in=[s.upper() for s in symbol])
            missing = {s.upper() for s in symbol} - set(instruments.values_list("symbol", flat=True))
            if missing:
                raise CommandError(f"Unknown symbol(s): {', '.join(sorted(missing))}.")
        walk = WalkParameters(volatility=volatility, drift=drift)
        for number, instrument in enumerate(instruments):
            if only_empty and instrument.candles.exists():
                self.stdout.write(f"{instrument.symbol}: has candles, skipped")
                continue
            written = history_backfill(
                instrument=instrument, days=days, seed=None if seed is None else seed + number, walk=walk
            )
            if daily_days:
                written += history_backfill_daily(
                    instrument=instrument,
                    days=daily_days,
                    seed=None if seed is None else seed + 1000 + number,
                    walk=walk,
                )
            self.stdout.write(f"{instrument.symbol}: {written} candles written")
