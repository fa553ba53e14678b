"""`manage.py run_strategies`: the strategies' live runner as its own process (full stack)."""

import signal
import threading

from django.core.management.base import BaseCommand

from trading.strategies.runner import StrategyRunner


class Command(BaseCommand):
    help = (
        "Drive the running strategies from the venue's bars, their fills and their timers, through the "
        "engine's services (ADR 0008). Drives only strategies no other runner drives; a restarted runner "
        "resumes them without placing an order twice. Stops on SIGTERM or SIGINT."
    )

    def add_arguments(self, parser):
        parser.add_argument("--ticks", type=int, default=None, help="Stop after this many ticks (default: never).")

    def handle(self, *args, ticks, **options):
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        runner = StrategyRunner()
        done = runner.run(stop=stop, ticks=ticks)
        self.stdout.write(f"{done} ticks; drove {len(runner.drivers)} strategies at the end")
