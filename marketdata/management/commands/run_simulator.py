"""`manage.py run_simulator`: the market simulator as its own process (full stack)."""

import signal
import threading

from django.core.management.base import BaseCommand

from marketdata.simulator import Simulator


class Command(BaseCommand):
    help = (
        "Move the market: a random walk of each instrument's reference price, a market maker's ladder "
        "around it and noise traders, through the engine's services (SIMULATOR_* settings). Drives only "
        "instruments no other simulator drives; stops on SIGTERM or SIGINT."
    )

    def add_arguments(self, parser):
        parser.add_argument("--symbol", action="append", help="Only this symbol (repeatable); default: all.")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--steps", type=int, default=None, help="Stop after this many steps (default: never).")

    def handle(self, *args, symbol, seed, steps, **options):
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        simulator = Simulator(symbols=symbol, seed=seed)
        done = simulator.run(stop=stop, steps=steps)
        driven = sorted(driver.instrument.symbol for driver in simulator.drivers.values())
        self.stdout.write(
            f"{done} steps; drove {', '.join(driven) or 'nothing (every instrument is driven elsewhere)'}"
        )
