"""Orders for one instrument combined into batches across web workers (ADR 0005).

A worker placing an order tries the instrument's lock without waiting. If it gets it, it is
the combiner: it takes the orders other workers queued for the instrument in Redis, matches
them and its own in one transaction (`order_place_batch`), writes each order's idempotency
record there, commits, and pushes each waiting worker its answer. If the lock is busy, the
worker queues its order and waits a moment for its answer, then tries the lock again, so no
order is left behind by a combiner that finished just before it was queued.

Nothing lives only in one process: the queue and the answers are in Redis, the book in
PostgreSQL, and answers are pushed after commit. A worker whose answer does not come takes
its order back from the queue if nobody took it, and otherwise reads the answer its
Idempotency-Key's record holds (`_recover`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from audit.context import AuditContext, audit_context_get
from audit.services import RecordedActor, audit_actor_resolve
from portal.errors import DomainError
from portal.idempotency import (
    IdempotencyKeyTaken,
    IdempotencyTicket,
    idempotency_answer_record,
    idempotency_answers_store,
    idempotency_key_reused,
    idempotency_record_find,
)
from portal.redis_client import redis_client, redis_key
from trading.models import TradingAccount
from trading.order_rules import OrderRejected, OrderRequest
from trading.services import OrderEntry, OrderOutcome, order_place_alone, order_place_batch

logger = structlog.get_logger("trading.combining")

#: The message that tells a queued order's worker to try the lock: it is first in the queue.
WAKE = "wake"
#: How long a combiner's seat stays taken if its worker dies without leaving it.
COMBINER_TERM_MS = 5000
_ACCOUNT_FIELDS = ("id", "venue_id", "kind", "is_active", "stp_mode")
_DECIMAL_FIELDS = ("quantity", "quote_quantity", "price", "stop_price")


@dataclass(frozen=True)
class Answer:
    """An HTTP answer to an order request: its status and JSON body."""

    status: int
    body: Any
    content_type: str | None = None
    replayed: bool = False


@dataclass(frozen=True)
class QueuedOrder:
    """An order request as it travels between workers: plain data, no database rows."""

    token: str
    account: dict[str, Any]
    request: OrderRequest
    actor: RecordedActor
    context: AuditContext
    path: str
    ticket: IdempotencyTicket | None

    def entry(self) -> OrderEntry:
        return OrderEntry(TradingAccount(**self.account), self.request, self.actor, self.context)

    def dumps(self) -> str:
        request = {
            name: str(value) if isinstance(value, Decimal) else value
            for name, value in dataclasses.asdict(self.request).items()
        }
        return json.dumps(
            {
                "token": self.token,
                "account": self.account,
                "request": request,
                "actor": dataclasses.asdict(self.actor),
                "context": dataclasses.asdict(self.context),
                "path": self.path,
                "ticket": dataclasses.asdict(self.ticket) if self.ticket is not None else None,
            }
        )

    @classmethod
    def loads(cls, raw: bytes | str) -> QueuedOrder:
        data = json.loads(raw)
        request = data["request"]
        for name in _DECIMAL_FIELDS:
            if request[name] is not None:
                request[name] = Decimal(request[name])
        return cls(
            token=data["token"],
            account=data["account"],
            request=OrderRequest(**request),
            actor=RecordedActor(**data["actor"]),
            context=AuditContext(**data["context"]),
            path=data["path"],
            ticket=IdempotencyTicket(**data["ticket"]) if data["ticket"] is not None else None,
        )


#: Renders an outcome (or the error that stopped the order) as the answer its caller gets:
#: the API's serializer, or problem JSON.
Render = Callable[[OrderOutcome | Exception, QueuedOrder], Answer]


def combining_enabled() -> bool:
    """Combining needs Redis and PostgreSQL, and a caller outside any transaction (inside one,
    the lock would outlive the batch)."""
    return (
        settings.TRADING_COMBINE_ORDERS
        and not settings.EMBEDDED
        and connection.vendor == "postgresql"
        and not connection.in_atomic_block
    )


def order_place_combined(
    *,
    account: TradingAccount,
    symbol: str,
    request: OrderRequest,
    actor: Any,
    path: str,
    ticket: IdempotencyTicket | None,
    render: Render,
) -> Answer:
    """Place an order, matched in a batch with the orders other workers sent meanwhile; the
    answer is what `render` makes of its outcome (the same whichever worker matched it)."""
    order = QueuedOrder(
        token=uuid.uuid4().hex,
        account={name: getattr(account, name) for name in _ACCOUNT_FIELDS},
        request=request,
        actor=audit_actor_resolve(actor),
        context=audit_context_get(),
        path=path,
        ticket=ticket,
    )
    return _Waiter(symbol.upper(), order, render).run()


class _Waiter:
    def __init__(self, symbol: str, order: QueuedOrder, render: Render):
        self.symbol = symbol
        self.order = order
        self.render = render
        self.queue_key = redis_key("orders", symbol)
        self.reply_key = redis_key("answer", order.token)
        self.combiner_key = redis_key("combiner", symbol)

    def run(self) -> Answer:
        """Queue the order and stand for combiner in one round trip; the combiner matches
        until its own order is answered; the others wait for their answer, or for a wake-up
        (their order is first in the queue and nobody combines: they stand again)."""
        redis = redis_client()
        deadline = time.monotonic() + settings.TRADING_COMBINE_WAIT_SECONDS
        with redis.pipeline(transaction=False) as pipe:
            pipe.rpush(self.queue_key, self.order.dumps())
            pipe.set(self.combiner_key, self.order.token, nx=True, px=COMBINER_TERM_MS)
            elected = pipe.execute()[1]
        while True:
            if elected:
                try:
                    answer = self._combine()
                finally:
                    self._step_down()
                if answer is not None:
                    return answer
            reply = redis.blpop([self.reply_key], timeout=settings.TRADING_COMBINE_POLL_SECONDS)
            if reply is not None:
                message = json.loads(reply[1])
                if WAKE not in message:
                    return Answer(**message)
            elif time.monotonic() > deadline:
                return self._recover()
            elected = redis.set(self.combiner_key, self.order.token, nx=True, px=COMBINER_TERM_MS)

    def _step_down(self) -> None:
        """Leave the combiner's seat; if orders are queued, wake the worker of the first one to
        take it (an order queued while we sat was not elected, and waits)."""
        head = _step_down_script()(keys=[self.combiner_key, self.queue_key], args=[self.order.token])
        if head is not None:
            with redis_client().pipeline(transaction=False) as pipe:
                _push(pipe, json.loads(head)["token"], json.dumps({WAKE: True}))
                pipe.execute()

    def _combine(self) -> Answer | None:
        """As the combiner: match the queued orders in batches until ours is among them or the
        queue is empty, pushing each its answer after commit; our answer, or None if another
        combiner took our order (its answer comes by Redis)."""
        while True:
            drained, answers = self._batch()
            if not drained:
                return None
            mine = self.order.token
            self._reply(
                [order for order in drained if order.token != mine],
                [answer for order, answer in zip(drained, answers, strict=True) if order.token != mine],
            )
            for order, answer in zip(drained, answers, strict=True):
                if order.token == mine:
                    return answer

    def _batch(self) -> tuple[list[QueuedOrder], list[Answer]]:
        """One batch: the instrument's lock, then up to TRADING_COMBINE_MAX_BATCH queued orders
        matched in one transaction with their idempotency records; the orders and answers."""
        redis = redis_client()
        drained: list[QueuedOrder] = []
        answers: list[Answer] = []

        def queued() -> list[OrderEntry]:
            if not drained:  # once: a retried transaction matches the same orders again
                raws: Any = redis.lpop(self.queue_key, settings.TRADING_COMBINE_MAX_BATCH) or ()
                drained.extend(QueuedOrder.loads(raw) for raw in raws)
            return [order.entry() for order in drained]

        def record_answers(outcomes: list[OrderOutcome]) -> None:
            answers[:] = [self.render(o, q) for o, q in zip(outcomes, drained, strict=True)]
            _answers_store(drained, answers)

        try:
            order_place_batch(instrument=self.symbol, entries=(), queued=queued, before_commit=record_answers)
        except Exception as failure:  # noqa: BLE001 - every order is then placed alone
            if not drained:  # an unknown symbol, a database down: our caller gets the error
                redis.lrem(self.queue_key, 1, self.order.dumps())
                raise
            logger.info("batch_failed", symbol=self.symbol, orders=len(drained), error=repr(failure))
            answers[:] = [self._place_alone(order) for order in drained]
        return drained, answers

    def _place_alone(self, order: QueuedOrder) -> Answer:
        """`order` in a transaction of its own (a batch of one)."""
        answers: list[Answer] = []

        def record_answer(outcomes: list[OrderOutcome]) -> None:
            answers[:] = [self.render(outcomes[0], order)]
            _answers_store([order], answers)

        try:
            order_place_alone(instrument=self.symbol, entry=order.entry(), before_commit=record_answer)
        except IdempotencyKeyTaken:
            return self._answer_on_record(order)
        except DomainError as error:
            return self.render(error, order)
        except Exception as error:  # noqa: BLE001 - this caller gets a 500; the others are not affected
            logger.exception("order_failed", symbol=self.symbol, token=order.token)
            return self.render(error, order)
        return answers[0]

    def _answer_on_record(self, order: QueuedOrder) -> Answer:
        """The answer stored under `order`'s Idempotency-Key by the attempt that placed it."""
        ticket = order.ticket
        assert ticket is not None  # noqa: S101 - only keyed orders conflict on a record
        record = idempotency_record_find(scope=ticket.scope, key=ticket.key)
        if record is None or record.response_status is None or record.fingerprint != ticket.fingerprint:
            return self.render(idempotency_key_reused(), order)
        content_type = record.response_headers.get("Content-Type")
        return Answer(record.response_status, record.response_body, content_type=content_type, replayed=True)

    def _reply(self, orders: Sequence[QueuedOrder], answers: Sequence[Answer]) -> None:
        """After commit: each order's answer to its worker."""
        if not orders:
            return
        with redis_client().pipeline(transaction=False) as pipe:
            for order, answer in zip(orders, answers, strict=True):
                _push(pipe, order.token, _answer_dumps(answer))
            pipe.execute()

    def _recover(self) -> Answer:
        """No answer in time. If our order is still queued, nobody took it: place it
        ourselves. If a combiner took it, wait for its answer a while longer; then its
        Idempotency-Key's record (written with the order, or not at all) tells, and without
        a key the outcome is unknown to us: say so (504), never place it twice."""
        redis = redis_client()
        if redis.lrem(self.queue_key, 1, self.order.dumps()):
            return self._place_alone(self.order)
        end = time.monotonic() + settings.TRADING_COMBINE_WAIT_SECONDS
        while (left := end - time.monotonic()) > 0:
            reply = redis.blpop([self.reply_key], timeout=left)
            if reply is None:
                break
            message = json.loads(reply[1])
            if WAKE not in message:
                return Answer(**message)
        if self.order.ticket is not None:
            return self._place_alone(self.order)  # exactly once: the record's unique key decides
        logger.warning("order_outcome_unknown", symbol=self.symbol, token=self.order.token)
        return self.render(
            OrderRejected(
                "EXECUTION_STATUS_UNKNOWN",
                "The engine did not answer in time; look the order up by its client_order_id before sending it again.",
                status=504,
            ),
            self.order,
        )


@functools.cache
def _step_down_script():
    """Leave the combiner's seat if it is still ours, and tell which order is first in the
    queue — atomically, so an order queued meanwhile is either seen here or elects its own."""
    return redis_client().register_script(
        """
        if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
        return redis.call('LINDEX', KEYS[2], 0)
        """
    )


def _push(pipe, token: str, message: str) -> None:
    key = redis_key("answer", token)
    pipe.rpush(key, message)
    pipe.pexpire(key, int(settings.TRADING_COMBINE_WAIT_SECONDS * 2000))


def _answers_store(orders: Sequence[QueuedOrder], answers: Sequence[Answer]) -> None:
    records = [
        idempotency_answer_record(
            order.ticket,
            status=answer.status,
            body=answer.body,
            headers={"Content-Type": answer.content_type} if answer.content_type else {},
        )
        for order, answer in zip(orders, answers, strict=True)
        if order.ticket is not None
    ]
    idempotency_answers_store([record for record in records if record is not None])


def _answer_dumps(answer: Answer) -> str:
    return json.dumps(dataclasses.asdict(answer), cls=DjangoJSONEncoder)
