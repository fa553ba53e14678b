"""Orders combined across workers (ADR 0005) on the real PostgreSQL and Redis: queued while an
instrument's lock is held, matched together by whoever takes it, each answered, each once."""

import hashlib
import threading
import time
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction

from audit.context import AuditContext, audit_context_reset, audit_context_set
from portal.idempotency import IdempotencyTicket, idempotency_answer_record, idempotency_answers_store
from portal.models import IdempotencyRecord
from portal.redis_client import redis_client, redis_key
from trading.api.v1.views import _order_answer
from trading.combining import order_place_combined
from trading.models import Order, Trade
from trading.order_rules import OrderRequest
from trading.tests.fixtures import assert_reconciled

D = Decimal
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _needs_postgres_and_redis(settings):
    if connection.vendor != "postgresql" or settings.EMBEDDED:
        pytest.skip("needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL); CI runs on both")
    settings.TRADING_COMBINE_ORDERS = True
    redis_client().delete(redis_key("orders", "BTCUSDT"), redis_key("combiner", "BTCUSDT"))


class LockHolder:
    """Holds BTCUSDT's lock in a transaction of its own until `release()`."""

    def __init__(self, instrument):
        self.taken, self.done = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold, args=(instrument.pk,))

    def _hold(self, instrument_id: int) -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT id FROM marketdata_instrument WHERE id = %s FOR NO KEY UPDATE", [instrument_id])
                self.taken.set()
                self.done.wait(30)
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        assert self.taken.wait(10)
        return self

    def __exit__(self, *exc):
        self.release()

    def release(self):
        self.done.set()
        self.thread.join(10)


def queued_count() -> int:
    return redis_client().llen(redis_key("orders", "BTCUSDT"))


def place_while_locked(market, calls):
    """Run each `call()` in a thread of its own while BTCUSDT's lock is held, until every
    order is queued; then release it. Their answers, in order."""
    with LockHolder(market.btcusdt):
        threads, answers, errors = place_in_threads(calls)
        wait_until(lambda: queued_count() == len(calls))
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return answers


def place_in_threads(calls):
    """Run each `call()` in a thread of its own; their answers, in order."""
    answers: list = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index, call):
        try:
            answers[index] = call()
        except BaseException as error:  # noqa: BLE001 - re-raised by the test below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    return threads, answers, errors


def order_call(account, side, qty, price, *, request_id, ticket=None):
    request = OrderRequest(side=side, type="LIMIT", quantity=D(qty), price=D(price))

    def call():
        token = audit_context_set(AuditContext(request_id=request_id))
        try:
            return order_place_combined(
                account=account,
                symbol="btcusdt",
                request=request,
                actor=account.owner,
                path="/api/v1/orders",
                ticket=ticket,
                render=_order_answer,
            )
        finally:
            audit_context_reset(token)

    return call


def ticket_for(account, key: str) -> IdempotencyTicket:
    fingerprint = hashlib.sha256(key.encode()).hexdigest()
    return IdempotencyTicket(
        scope=f"user:{account.owner_id}", key=key, method="POST", path="/api/v1/orders", fingerprint=fingerprint
    )


def wait_until(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.fixture
def traders(funded_account):
    return [funded_account(f"t{i}", USDT="100000", BTC="100") for i in range(4)]


def test_orders_queued_while_the_lock_is_held_are_matched_in_one_transaction(market, traders):
    calls = [
        order_call(traders[0], "SELL", "1", "100", request_id="r0"),
        order_call(traders[1], "SELL", "1", "101", request_id="r1"),
        order_call(traders[2], "BUY", "1.5", "101", request_id="r2"),
        order_call(traders[3], "BUY", "1", "99", request_id="r3"),
    ]
    answers = place_while_locked(market, calls)

    assert [answer.status for answer in answers] == [201] * 4, answers
    ids = [answer.body["id"] for answer in answers]
    with connection.cursor() as cursor:  # rows written by one transaction share its xmin
        cursor.execute("SELECT COUNT(DISTINCT xmin::text) FROM trading_order WHERE id = ANY(%s)", [ids])
        assert cursor.fetchone()[0] == 1
    # Each answer shows its order as the batch committed it (a later order may have filled it).
    stored = dict(Order.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert {answer.body["id"]: answer.body["status"] for answer in answers} == stored
    assert Trade.objects.exists()
    assert queued_count() == 0
    assert_reconciled()


def test_a_refused_order_of_a_batch_gets_its_problem_and_the_others_their_orders(market, traders):
    calls = [
        order_call(traders[0], "BUY", "1", "99", request_id="fine"),
        order_call(traders[1], "BUY", "1", "99.001", request_id="off-tick"),
    ]
    answers = place_while_locked(market, calls)

    fine, refused = answers
    assert fine.status == 201
    assert refused.status == 422 and refused.content_type == "application/problem+json"
    assert (refused.body["code"], refused.body["trace_id"], refused.body["instance"]) == (
        "TICK_SIZE",
        "off-tick",
        "/api/v1/orders",
    )
    assert Order.objects.get(pk=refused.body["order_id"]).status == "REJECTED"


def test_each_order_writes_its_answered_idempotency_record_with_the_order(market, traders):
    ticket = ticket_for(traders[0], "key-1")
    answer = order_call(traders[0], "BUY", "1", "99", request_id="r", ticket=ticket)()

    record = IdempotencyRecord.objects.get(scope=ticket.scope, key="key-1")
    assert (record.response_status, record.response_body["id"]) == (201, answer.body["id"])
    assert record.completed_at is not None


def test_a_batch_that_fails_as_a_whole_is_placed_one_order_per_transaction(market, traders):
    """An attempt of the same request already answered (its record exists): the batch's record
    INSERT collides, the batch rolls back, and alone that order is answered from the record
    without being placed twice while the other order is placed."""
    ticket = ticket_for(traders[0], "answered-before")
    earlier = idempotency_answer_record(ticket, status=201, body={"id": 0, "earlier": True}, headers={})
    idempotency_answers_store([earlier])
    calls = [
        order_call(traders[0], "BUY", "1", "99", request_id="again", ticket=ticket),
        order_call(traders[1], "BUY", "1", "98", request_id="other"),
    ]
    answers = place_while_locked(market, calls)

    again, other = answers
    assert again.replayed and again.body == {"id": 0, "earlier": True}
    assert other.status == 201
    assert list(Order.objects.values_list("account_id", flat=True)) == [traders[1].pk]
    assert_reconciled()


def test_an_order_nobody_took_before_its_wait_ended_is_placed_by_its_own_worker(market, traders, settings):
    """A combiner died in its seat (the seat stays taken for its term): the waiting worker
    takes its order back from the queue when its wait ends, and places it itself."""
    settings.TRADING_COMBINE_WAIT_SECONDS = 0.3
    redis_client().set(redis_key("combiner", "BTCUSDT"), "dead-worker", px=5000)
    try:
        answer = order_call(traders[0], "BUY", "1", "99", request_id="late")()
    finally:
        redis_client().delete(redis_key("combiner", "BTCUSDT"))

    assert answer.status == 201 and Order.objects.get(pk=answer.body["id"]).status == "NEW"
    assert queued_count() == 0


def test_orders_through_the_api_are_combined_and_a_retry_replays_the_answer(market, traders, key_client):
    client = key_client(traders[0].owner)
    body = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "95"}

    first = client.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="api-1")
    again = client.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="api-1")
    refused = client.post("/api/v1/orders", {**body, "price": "95.001"}, format="json")

    assert first.status_code == 201 and again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Order.objects.filter(status="NEW").count() == 1
    assert refused.status_code == 422 and refused["Content-Type"] == "application/problem+json"
    assert refused.json()["code"] == "TICK_SIZE" and refused.json()["trace_id"]
