"""`manage.py import_klines SYMBOL INTERVAL FILE`: real market history from a Binance kline CSV."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from marketdata.history import klines_import
from marketdata.models import Instrument
from portal.errors import DomainError


class Command(BaseCommand):
    help = (
        "Import candles of one interval from a CSV in Binance's kline layout (open time, open, high, low, "
        "close, volume, close time, quote volume, trades, …). A file with any bad row imports nothing and "
        "lists every bad row with its line number."
    )

    def add_arguments(self, parser):
        parser.add_argument("symbol")
        parser.add_argument("interval", help="1m, 5m, 15m, 1h, 4h or 1d")
        parser.add_argument("file", type=Path)

    def handle(self, *args, symbol: str, interval: str, file: Path, **options):
        instrument = Instrument.objects.filter(symbol__iexact=symbol).first()
        if instrument is None:
            raise CommandError(f"Unknown symbol {symbol!r}.")
        try:
            with file.open(encoding="utf-8", newline="") as lines:
                report = klines_import(instrument=instrument, interval=interval, lines=lines)
        except (OSError, UnicodeDecodeError) as unreadable:
            raise CommandError(f"Cannot read {file}: {unreadable}") from unreadable
        except DomainError as refusal:
            raise CommandError(refusal.message) from refusal
        if report.errors:
            for error in report.errors:
                self.stderr.write(error)
            raise CommandError(f"{len(report.errors)} bad row(s) in {file}; nothing was imported.")
        self.stdout.write(f"{instrument.symbol} {interval}: {report.written} candles imported from {report.rows} rows")
