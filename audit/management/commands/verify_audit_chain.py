"""`manage.py verify_audit_chain`: prove the audit chain intact or name its first broken event."""

from django.core.management.base import BaseCommand, CommandError

from audit.services import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the hash chain of the audit log; exit 1 naming the first broken event."

    def handle(self, *args, **options):
        verdict = audit_chain_verify()
        if not verdict.ok:
            raise CommandError(
                f"Audit chain BROKEN at event #{verdict.broken_seq}: {verdict.reason} "
                f"({verdict.checked} events verified before it)."
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {verdict.checked} events verified."))
