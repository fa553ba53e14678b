"""Helpers the benchmarks share: timing a fast call, and waiting for the machine's test runs."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime


def seconds_per_call(function: Callable[[], object], minimum: float = 0.05) -> float:
    """Mean seconds of one call, repeating a fast function until `minimum` seconds have passed."""
    calls, started = 0, time.perf_counter()
    while True:
        function()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= minimum:
            return elapsed / calls


def tests_wait() -> None:
    """The machine has 2 cores: wait while a test run (pytest) is using them."""
    waited = 0
    while subprocess.run(["pgrep", "-f", "bin/pytest"], capture_output=True).returncode == 0:
        if waited % 60 == 0:
            print(f"[{datetime.now():%H:%M:%S}] a pytest run is going on: waiting for it to end", file=sys.stderr)
        time.sleep(5)
        waited += 5
