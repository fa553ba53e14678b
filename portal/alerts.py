"""Alerts to the people who run the venue: an email to every operator and admin with an address,
and to OPERATOR_ALERT_EMAILS (a shared mailbox, an on-call pager's address)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q

from portal.choices import Role
from portal.models import User


def operator_addresses() -> list[str]:
    staff = User.objects.filter(is_active=True).exclude(email="")
    staff = staff.filter(Q(is_superuser=True) | Q(groups__name__in=[Role.OPERATOR, Role.ADMIN])).distinct()
    return sorted({*staff.values_list("email", flat=True), *settings.OPERATOR_ALERT_EMAILS})


def operators_alert(*, subject: str, body: str) -> list[str]:
    """Email `subject` and `body` to the operators; returns the addresses (none: nobody to tell)."""
    recipients = operator_addresses()
    if recipients:
        send_mail(f"[Tradeport] {subject}", body, None, recipients, fail_silently=False)
    return recipients
