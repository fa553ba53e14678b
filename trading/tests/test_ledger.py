"""Ledger and balances: deposits and withdrawals through the ledger, append-only, never negative."""

from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent
from portal.errors import DomainError
from trading.ledger import InsufficientBalance
from trading.models import LedgerEntry, LedgerEntryImmutable
from trading.services import deposit_create, withdrawal_create
from trading.tests.fixtures import assert_reconciled, balance_of

D = Decimal
pytestmark = pytest.mark.django_db


def test_deposit_and_withdrawal_move_free_balance_through_the_ledger_and_are_audited(funded_account, market):
    account = funded_account("alice")
    deposit_create(account=account, asset=market.usdt, amount=D("250.5"), reason="wire 42", actor="ops")
    withdrawal_create(account=account, asset=market.usdt, amount=D("50.25"), reason="payout 7", actor="ops")
    assert balance_of(account, "USDT") == (D("200.25"), D("0"))
    entries = list(
        LedgerEntry.objects.filter(account=account).order_by("id").values_list("kind", "free_delta", "free_after")
    )
    assert entries == [("DEPOSIT", D("250.5"), D("250.5")), ("WITHDRAWAL", D("-50.25"), D("200.25"))]
    assert AuditEvent.objects.filter(action="ledger.deposit", target_id=str(account.pk)).exists()
    assert AuditEvent.objects.filter(action="ledger.withdrawal", target_id=str(account.pk)).exists()
    assert_reconciled()


def test_withdrawal_beyond_the_free_balance_is_refused_and_changes_nothing(funded_account, market, place):
    account = funded_account("alice", USDT="100")
    place(account, "BUY", "LIMIT", "0.5", "100")  # locks 50.1
    with pytest.raises(InsufficientBalance):
        withdrawal_create(account=account, asset=market.usdt, amount=D("60"), reason="too much", actor="ops")
    assert balance_of(account, "USDT") == (D("49.9"), D("50.1"))
    assert not LedgerEntry.objects.filter(kind="WITHDRAWAL").exists()
    assert_reconciled()


@pytest.mark.parametrize(
    ("amount", "reason", "code"),
    [
        (D("0"), "x", "INVALID_AMOUNT"),
        (D("-1"), "x", "INVALID_AMOUNT"),
        (D("1.123456789"), "x", "INVALID_AMOUNT"),
        (D("1"), "  ", "REASON_REQUIRED"),
    ],
)
def test_deposit_needs_a_positive_amount_and_a_reason(funded_account, market, amount, reason, code):
    account = funded_account("alice")
    with pytest.raises(DomainError) as caught:
        deposit_create(account=account, asset=market.usdt, amount=amount, reason=reason, actor="ops")
    assert caught.value.code == code
    assert not LedgerEntry.objects.exists()


def test_ledger_entries_cannot_be_changed_or_deleted(funded_account):
    account = funded_account("alice", USDT="10")
    entry = LedgerEntry.objects.get(account=account)
    with pytest.raises(LedgerEntryImmutable):
        entry.save()
    with pytest.raises(LedgerEntryImmutable):
        LedgerEntry.objects.filter(pk=entry.pk).update(reason="edited")
    with pytest.raises(LedgerEntryImmutable):
        entry.delete()


@pytest.mark.postgres
def test_postgresql_refuses_update_and_delete_of_ledger_rows(funded_account):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL); CI runs on it")
    account = funded_account("alice", USDT="10")
    entry = LedgerEntry.objects.get(account=account)
    for sql in (
        "UPDATE trading_ledgerentry SET reason = 'x' WHERE id = %s",
        "DELETE FROM trading_ledgerentry WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [entry.pk])


def test_balances_never_go_negative_in_the_database(funded_account, market):
    from trading.models import Balance

    account = funded_account("alice", USDT="10")
    with pytest.raises(DatabaseError), transaction.atomic():
        Balance.objects.filter(account=account).update(free=D("-1"))
