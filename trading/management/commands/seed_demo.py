"""`manage.py seed_demo`: the demo market (instruments, funded accounts, a quoted book) and demo logins."""

from django.core.management.base import BaseCommand

from trading.demo import demo_market_seed


class Command(BaseCommand):
    help = "Create the demo users, instruments, funded accounts and the market maker's book when missing."

    def handle(self, *args, **options):
        logins = demo_market_seed()
        self.stdout.write("Demo market: BTCUSDT, ETHUSDT, BNBUSDT, SOLUSDT with a market maker's book.")
        self.stdout.write("Demo logins (http://127.0.0.1:8000/login/):")
        for login in logins:
            self.stdout.write(f"  {login.role:<9} {login.username:<15} password: {login.password}")
