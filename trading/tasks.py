"""Celery entry points of the trading app; each calls one service."""

from __future__ import annotations

import structlog
from celery import shared_task

from audit.services import audit_record
from portal.alerts import operators_alert
from portal.jobs import JOB_TASK_OPTIONS, job_execute
from trading.reconcile import reconcile_run
from trading.strategies.backtests import backtest_execute

logger = structlog.get_logger("trading.reconcile")


@shared_task(name="trading.reconcile", time_limit=1800, soft_time_limit=1700, max_retries=0)
def reconcile() -> dict:
    """The scheduled `manage.py reconcile`: logs the verdict; a break is also an audit event and
    an email to the operators (`portal.alerts`). Reads only, so a rerun is always safe."""
    report = reconcile_run()
    summary = {"ok": report.ok, "checked": report.checked, "breaks": len(report.breaks)}
    if report.ok:
        logger.info("reconcile_clean", **summary)
    else:
        details = [f"[{item.check}] {item.detail}" for item in report.breaks[:50]]
        logger.error("reconcile_breaks", first_breaks=details, **summary)
        audit_record(action="reconcile.break", actor="reconcile", after={**summary, "first_breaks": details})
        operators_alert(
            subject=f"reconcile found {len(report.breaks)} break(s)",
            body="\n".join(
                [f"The scheduled reconciliation checked {report.checked} items and found {len(report.breaks)} breaks:"]
                + details
                + ["", "Run `python manage.py reconcile` for the full report."]
            ),
        )
    return summary


@shared_task(name="trading.backtest_run", soft_time_limit=900, time_limit=960, **JOB_TASK_OPTIONS)
def backtest_run(job_id: str) -> None:
    """A backtest's job (queue `risk`)."""
    job_execute(job_id, backtest_execute)
