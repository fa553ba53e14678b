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
    idempotency_record_find,
)
from portal.redis_client import redis_client, redis_key
from trading.engine import LockBusy
from trading.models import TradingAccount
from trading.order_rules import OrderRejected, OrderRequest
from trading.services import OrderEntry, OrderOutcome, order_place_alone, order_place_batch

logger = structlog.get_logger("trading.combining")

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

    def run(self) -> Answer:
        redis = redis_client()
        deadline = time.monotonic() + settings.TRADING_COMBINE_WAIT_SECONDS
        queued = False
        while True:
            try:
                answer = self._combine(own=None if queued else self.order)
            except LockBusy:
                answer = None
                if not queued:
                    redis.rpush(self.queue_key, self.order.dumps())
                    queued = True
            if answer is not None:
                return answer
            while queued and not redis.llen(self.queue_key) and time.monotonic() < deadline:
                # Our order was taken: its answer comes once that batch commits.
                reply = redis.blpop([self.reply_key], timeout=settings.TRADING_COMBINE_POLL_SECONDS)
                if reply is not None:
                    return _answer_loads(reply[1])
            reply = redis.blpop([self.reply_key], timeout=settings.TRADING_COMBINE_POLL_SECONDS)
            if reply is not None:
                return _answer_loads(reply[1])
            if time.monotonic() > deadline:
                return self._recover()

    def _combine(self, *, own: QueuedOrder | None) -> Answer | None:
        """Take the lock without waiting (`LockBusy` if held), then match what is queued and
        `own` in one batch; push the others their answers; `own`'s answer (None: not ours)."""
        redis = redis_client()
        room = settings.TRADING_COMBINE_MAX_BATCH - (1 if own is not None else 0)
        drained: list[QueuedOrder] = []
        taken = False

        def queued() -> list[OrderEntry]:
            nonlocal taken
            if not taken:  # once: a retried transaction matches the same orders again
                taken = True
                drained.extend(QueuedOrder.loads(raw) for raw in redis.lpop(self.queue_key, room) or ())  # type: ignore[arg-type]
            return [order.entry() for order in drained]

        answers: list[Answer] = []
        own_orders = [own] if own is not None else []

        def record_answers(outcomes: list[OrderOutcome]) -> None:
            answers[:] = [self.render(o, q) for o, q in zip(outcomes, [*drained, *own_orders], strict=True)]
            _answers_store([*drained, *own_orders], answers)

        try:
            order_place_batch(
                instrument=self.symbol,
                entries=[order.entry() for order in own_orders],
                queued=queued,
                wait=False,
                before_commit=record_answers,
            )
        except Exception as failure:  # noqa: BLE001 - every order is then retried alone
            if not taken:  # a busy lock, an unknown symbol: nothing was taken from the queue
                raise
            logger.info("batch_failed", symbol=self.symbol, orders=len(drained) + len(own_orders), error=repr(failure))
            answers[:] = [self._place_alone(order) for order in [*drained, *own_orders]]
        self._reply(drained, answers[: len(drained)])
        return answers[-1] if own is not None else None

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
            refusal = DomainError(
                "idempotency_key_reused", "This Idempotency-Key was already used with a different request.", status=422
            )
            return self.render(refusal, order)
        content_type = record.response_headers.get("Content-Type")
        return Answer(record.response_status, record.response_body, content_type=content_type, replayed=True)

    def _reply(self, orders: Sequence[QueuedOrder], answers: Sequence[Answer]) -> None:
        if not orders:
            return
        with redis_client().pipeline(transaction=False) as pipe:
            for order, answer in zip(orders, answers, strict=True):
                key = redis_key("answer", order.token)
                pipe.rpush(key, _answer_dumps(answer))
                pipe.pexpire(key, int(settings.TRADING_COMBINE_WAIT_SECONDS * 2000))
            pipe.execute()

    def _recover(self) -> Answer:
        """No answer in time. If our order is still queued, nobody took it: place it
        ourselves. If a combiner took it, wait for its answer a while longer; then its
        Idempotency-Key's record (written with the order, or not at all) tells, and without
        a key the outcome is unknown to us: say so (504), never place it twice."""
        redis = redis_client()
        if redis.lrem(self.queue_key, 1, self.order.dumps()):
            return self._place_alone(self.order)
        reply = redis.blpop([self.reply_key], timeout=settings.TRADING_COMBINE_WAIT_SECONDS)
        if reply is not None:
            return _answer_loads(reply[1])
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


def _answer_loads(raw: bytes | str) -> Answer:
    return Answer(**json.loads(raw))
