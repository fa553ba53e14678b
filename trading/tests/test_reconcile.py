"""`reconcile` is clean on a consistent venue and names every kind of break it is built to find."""

from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from trading.demo import demo_market_seed
from trading.models import Balance, Order

D = Decimal
pytestmark = pytest.mark.django_db


def test_seeded_demo_market_reconciles_cleanly_and_has_a_book(capsys):
    demo_market_seed()
    demo_market_seed()  # idempotent: a second run adds nothing
    call_command("reconcile")
    assert "Reconciliation clean" in capsys.readouterr().out
    assert Order.objects.filter(status="NEW", account__kind="MARKET_MAKER").count() == 4 * 20


def test_a_balance_changed_outside_the_ledger_is_reported(funded_account, place):
    account = funded_account("alice", USDT="100")
    Balance.objects.filter(account=account).update(free=D("150"))
    with pytest.raises(CommandError):
        call_command("reconcile")


def test_a_crossed_book_and_a_wrong_order_lock_are_reported(funded_account, place, capsys):
    buyer = funded_account("buyer", USDT="1000")
    seller = funded_account("seller", BTC="10")
    bid = place(buyer, "BUY", qty="1", price="99")
    place(seller, "SELL", qty="1", price="101")
    Order.objects.filter(pk=bid.pk).update(price=D("102"), locked_amount=D("50"))
    with pytest.raises(CommandError):
        call_command("reconcile")
    out = capsys.readouterr().out
    assert "book_not_crossed" in out and "order_lock_exact" in out


def test_the_scheduled_reconcile_reports_breaks_in_the_audit_log(funded_account):
    from audit.models import AuditEvent
    from trading.tasks import reconcile

    account = funded_account("alice", USDT="100")
    assert reconcile.apply().get()["ok"] is True
    assert not AuditEvent.objects.filter(action="reconcile.break").exists()
    Balance.objects.filter(account=account).update(locked=D("1"))
    summary = reconcile.apply().get()
    assert summary["ok"] is False and summary["breaks"] >= 1
    event = AuditEvent.objects.get(action="reconcile.break")
    assert any("balance_equals_ledger" in line for line in event.after["first_breaks"])


def test_a_break_found_on_schedule_is_emailed_to_the_operators(funded_account, make_user, smtp_server, settings):
    from portal.choices import Role
    from trading.tasks import reconcile

    settings.OPERATOR_ALERT_EMAILS = ["oncall@example.com"]
    make_user("olga", role=Role.OPERATOR).__class__.objects.filter(username="olga").update(email="olga@example.com")
    make_user("tom", role=Role.TRADER).__class__.objects.filter(username="tom").update(email="tom@example.com")
    account = funded_account("alice", USDT="100")
    reconcile.apply()
    assert smtp_server.wait_for(1, timeout=0.5) == []
    Balance.objects.filter(account=account).update(locked=D("1"))
    reconcile.apply()
    (message,) = smtp_server.wait_for(1)
    assert sorted(message.envelope_recipients) == ["olga@example.com", "oncall@example.com"]
    assert "reconcile found" in message["Subject"] and "balance_equals_ledger" in message.get_content()
