"""The audit log is append-only and hash-chained: verification passes on an intact chain,
names the first broken event after tampering, and concurrent writers never fork it."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from audit.management.commands.verify_audit_chain import Command as VerifyAuditChain
from audit.models import AuditEvent, AuditEventImmutable
from audit.services import GENESIS_HASH, Target, audit_chain_verify, audit_event_hash, audit_record

pytestmark = pytest.mark.django_db

ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
postgresql_only = pytest.mark.skipif(
    not ON_POSTGRESQL, reason="needs PostgreSQL (its trigger / real concurrency); CI runs on it"
)


def _record_events(count: int) -> list[AuditEvent]:
    return [
        audit_record(action="test.event", actor="tester", target=Target(type="thing", id=str(n)), after={"n": n})
        for n in range(1, count + 1)
    ]


def _raw_sql(sql: str, params: list | None = None) -> None:
    """Write to the audit table behind the application's back, as an attacker with SQL access
    would: on PostgreSQL the append-only trigger is switched off for the statement (inside
    this test's transaction, so it is back on afterwards)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute(sql, params or [])
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")


def _verify_from_command_line(capsys, monkeypatch) -> tuple[int, str, str]:
    """Run `manage.py verify_audit_chain` as the shell would: exit status, stdout, stderr."""
    # run_from_argv closes every connection when done; keep this test's transaction open.
    monkeypatch.setattr("django.core.management.base.connections.close_all", lambda: None)
    try:
        VerifyAuditChain().run_from_argv(["manage.py", "verify_audit_chain"])
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# --- an intact chain -------------------------------------------------------------------


def test_events_are_numbered_without_gaps_and_each_links_to_the_previous_hash():
    events = _record_events(5)
    assert [event.seq for event in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == GENESIS_HASH
    for previous, event in zip(events, events[1:], strict=False):
        assert event.prev_hash == previous.hash
    assert len({event.hash for event in events}) == 5


def test_chain_of_many_events_verifies():
    _record_events(300)
    verdict = audit_chain_verify(chunk_size=64)  # several chunks
    assert verdict.ok and verdict.checked == 300
    assert verdict.broken_seq is None


def test_empty_chain_verifies():
    assert audit_chain_verify().ok


def test_verify_command_succeeds_with_exit_0_and_says_how_many_events_it_checked(capsys, monkeypatch):
    _record_events(12)
    status, out, err = _verify_from_command_line(capsys, monkeypatch)
    assert status == 0
    assert "Audit chain intact: 12 events verified." in out
    assert err == ""


# --- tampering is detected -------------------------------------------------------------


def test_changed_content_fails_verification_naming_that_event(capsys, monkeypatch):
    _record_events(10)
    _raw_sql("UPDATE audit_auditevent SET actor_label = %s WHERE seq = %s", ["someone-else", 4])

    verdict = audit_chain_verify()
    assert not verdict.ok
    assert verdict.broken_seq == 4 and verdict.checked == 3
    assert verdict.reason == "content does not match its hash"

    status, out, err = _verify_from_command_line(capsys, monkeypatch)
    assert status == 1
    assert "Audit chain BROKEN at event #4" in err
    assert "3 events verified before it" in err
    assert "intact" not in out


def test_changed_before_after_json_fails_verification():
    _record_events(3)
    _raw_sql("UPDATE audit_auditevent SET after = %s WHERE seq = 2", ['{"n": 999}'])
    verdict = audit_chain_verify()
    assert (verdict.ok, verdict.broken_seq) == (False, 2)


def test_call_command_raises_naming_the_first_broken_event():
    _record_events(6)
    _raw_sql("UPDATE audit_auditevent SET action = 'auth.login' WHERE seq = 5")
    _raw_sql("UPDATE audit_auditevent SET action = 'auth.login' WHERE seq = 2")
    with pytest.raises(CommandError, match=r"BROKEN at event #2\b") as raised:
        call_command("verify_audit_chain", stdout=StringIO())
    assert raised.value.returncode == 1


def test_rewriting_a_row_with_a_recomputed_hash_breaks_the_next_link():
    _record_events(6)
    forged = AuditEvent.objects.get(seq=3)
    forged.actor_label = "someone-else"
    _raw_sql(
        "UPDATE audit_auditevent SET actor_label = %s, hash = %s WHERE seq = 3",
        [forged.actor_label, audit_event_hash(forged)],
    )
    verdict = audit_chain_verify()
    assert not verdict.ok
    assert verdict.broken_seq == 4
    assert verdict.reason == "link to the previous event does not match"


def test_deleting_a_middle_event_is_detected_as_missing(capsys, monkeypatch):
    _record_events(8)
    _raw_sql("DELETE FROM audit_auditevent WHERE seq = 5")

    verdict = audit_chain_verify()
    assert not verdict.ok
    assert verdict.broken_seq == 5 and verdict.checked == 4
    assert verdict.reason == "event #5 is missing"

    status, _, err = _verify_from_command_line(capsys, monkeypatch)
    assert status == 1 and "BROKEN at event #5: event #5 is missing" in err


def test_deleting_the_first_event_is_detected_as_missing():
    _record_events(3)
    _raw_sql("DELETE FROM audit_auditevent WHERE seq = 1")
    verdict = audit_chain_verify()
    assert (verdict.ok, verdict.broken_seq, verdict.reason) == (False, 1, "event #1 is missing")


# --- the application cannot change or delete events ------------------------------------


def test_saving_a_recorded_event_again_is_refused():
    event = _record_events(1)[0]
    event.action = "something.else"
    with pytest.raises(AuditEventImmutable):
        event.save()
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"


def test_saving_a_new_instance_over_an_existing_row_is_refused():
    original = _record_events(2)[0]
    impostor = AuditEvent.objects.get(pk=original.pk)
    impostor._state.adding = True  # as a freshly built AuditEvent(pk=…, …) would be
    impostor.actor_label = "someone-else"
    with pytest.raises((AuditEventImmutable, DatabaseError)), transaction.atomic():
        impostor.save()
    with pytest.raises(AuditEventImmutable):
        AuditEvent(pk=original.pk, seq=original.seq, action="x").save(force_update=True)
    stored = AuditEvent.objects.get(pk=original.pk)
    assert stored.actor_label == "tester" and audit_chain_verify().ok


def test_deleting_an_event_is_refused():
    event = _record_events(1)[0]
    with pytest.raises(AuditEventImmutable):
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_queryset_update_and_delete_are_refused():
    _record_events(3)
    with pytest.raises(AuditEventImmutable):
        AuditEvent.objects.filter(seq=2).update(action="tampered")
    with pytest.raises(AuditEventImmutable):
        AuditEvent.objects.all().delete()
    events = list(AuditEvent.objects.all())
    for event in events:
        event.action = "tampered"
    with pytest.raises(AuditEventImmutable), transaction.atomic():
        AuditEvent.objects.bulk_update(events, ["action"])
    assert AuditEvent.objects.count() == 3
    assert not AuditEvent.objects.filter(action="tampered").exists()
    assert audit_chain_verify().ok


@postgresql_only
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET actor_label = 'someone-else' WHERE seq = 1",
        "DELETE FROM audit_auditevent WHERE seq = 1",
        "DELETE FROM audit_auditevent",
    ],
)
def test_postgresql_trigger_refuses_raw_update_and_delete(statement):
    _record_events(2)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    assert AuditEvent.objects.count() == 2
    assert audit_chain_verify().ok


# --- concurrent writers ----------------------------------------------------------------


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_extend_one_chain_without_gaps_or_forks():
    writers, events_each = 8, 25
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            barrier.wait(timeout=10)
            for n in range(events_each):
                audit_record(action="test.concurrent", actor=f"writer-{writer}", after={"n": n})
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)
    total = writers * events_each
    rows = list(AuditEvent.objects.order_by("seq").values_list("seq", "prev_hash", "actor_label"))
    assert len(rows) == total
    assert [seq for seq, _, _ in rows] == list(range(1, total + 1))
    assert len({prev_hash for _, prev_hash, _ in rows}) == total  # no two events follow the same one
    assert {label for _, _, label in rows} == {f"writer-{writer}" for writer in range(writers)}
    verdict = audit_chain_verify()
    assert verdict.ok and verdict.checked == total
