"""bench/engine_ab: the engine alone (bench/order_engine.engine_run: `order_place` in-process, one
thread, BTCUSDT) on an earlier revision and on this checkout, rounds interleaved, so a change's
cost on the order path is a ratio measured side by side.

    .venv/bin/python bench/engine_ab.py d7b63cc            # 6 rounds of 400 orders each side
    .venv/bin/python bench/engine_ab.py d7b63cc --rounds 4 --orders 300

The earlier revision is checked out with `git worktree` under a temporary folder (removed at the
end). Each side gets its own database (`tradeport_ab_old`, `tradeport_ab_new`, recreated and
migrated) and the bench trader of `bench_setup`; both use Redis db 10, so both publish their
stream messages as a full-stack process does. PostgreSQL on 127.0.0.1:5432 (user postgres).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = ROOT / ".venv" / "bin" / "python"


def _env(side: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/tradeport_ab_{side}",
        "REDIS_URL": "redis://127.0.0.1:6379/10",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DB_CONN_MAX_AGE": "60",
    }


def _shell(side: str, cwd: Path, code: str) -> str:
    command = [str(PY), "manage.py", "shell", "-c", code]
    done = subprocess.run(command, cwd=cwd, env=_env(side), capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise SystemExit(f"{side}: {done.stderr[-3000:]}")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("revision", help="the earlier revision (any git revision)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--orders", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="engine-ab-") as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(old), args.revision], cwd=ROOT, check=True)
        try:
            sides = {"old": old, "new": ROOT}
            for side, cwd in sides.items():
                database = f"tradeport_ab_{side}"
                subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", database], check=True)
                subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", database], check=True)
                subprocess.run([str(PY), "manage.py", "migrate", "-v", "0"], cwd=cwd, env=_env(side), check=True)
                _shell(side, cwd, "from bench.order_engine import bench_setup; bench_setup()")
            results: dict[str, list[dict]] = {side: [] for side in sides}
            run = "from bench.order_engine import engine_run; "
            run += f"engine_run(threads=1, orders={args.orders}, spread=False)"
            for round_ in range(args.rounds):
                for side in ("old", "new") if round_ % 2 == 0 else ("new", "old"):
                    line = next(x for x in _shell(side, sides[side], run).splitlines() if x.startswith("ENGINE="))
                    results[side].append(json.loads(line.removeprefix("ENGINE=")))
            rates = {side: statistics.median(r["rate"] for r in rows) for side, rows in results.items()}
            p50 = {side: statistics.median(r["p50_ms"] for r in rows) for side, rows in results.items()}
            for side in sides:
                rounds = len(results[side])
                print(f"{side}: median {rates[side]:.1f} orders/s, p50 {p50[side]:.2f} ms ({rounds} rounds)")
            print(f"new / old: {rates['new'] / rates['old']:.2f} × the orders/s")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
