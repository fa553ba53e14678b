"""`manage.py reconcile`: check every ledger and book invariant; exit 1 on any break."""

from django.core.management.base import BaseCommand, CommandError

from trading.reconcile import reconcile_run


class Command(BaseCommand):
    help = "Check balances against the ledger, conservation per asset, books, order locks, trades and positions."

    def handle(self, *args, **options):
        report = reconcile_run()
        checked = ", ".join(f"{count} {name}" for name, count in report.checked.items())
        self.stdout.write(f"Checked {checked}.")
        if report.ok:
            self.stdout.write(self.style.SUCCESS("Reconciliation clean: every invariant holds."))
            return
        for item in report.breaks:
            self.stdout.write(self.style.ERROR(f"BREAK [{item.check}] {item.detail}"))
        raise CommandError(f"{len(report.breaks)} break(s) found.")
