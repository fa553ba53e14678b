"""`manage.py demo_users`: create the demo users when missing and print their logins."""

from django.core.management.base import BaseCommand

from portal.users import demo_users_ensure


class Command(BaseCommand):
    help = "Create one demo user per role (viewer, trader, operator, admin) and print the logins."

    def handle(self, *args, **options):
        logins = demo_users_ensure()
        self.stdout.write("Demo logins (http://127.0.0.1:8000/login/):")
        for login in logins:
            self.stdout.write(f"  {login.role:<9} {login.username:<15} password: {login.password}")
