"""The Redis cache django-ratelimit counts in: one round trip per count instead of two.

django-ratelimit's `get_usage` calls `add(key, initial, period)` and, when the counter
already exists (every request but a window's first), `incr(key)`: two round trips on every
API call and sign-in. Here `add` only notes the counter's expiry and answers "exists"
without asking Redis; `incr` then creates or increments the counter and sets that expiry
in one atomic script. A read without counting (`add(key, 0)`, then `get(key, 0)`) still
reads 0 for a missing counter, and a counter lost mid-window (Redis restarted) starts
again at 1 instead of failing closed.

A caller that can live with a little slack may lease counts in blocks (`counts_leased`):
the process then reserves `n` consecutive counts with one round trip and hands them out
from memory. Each count is still unique across processes, and a request is refused when
its count passes the limit, so no more than the limit is ever admitted; what a process
leased and did not use before the window ends is lost (less than one block per process).

Only counters live in this cache alias (`CACHES["ratelimit"]`); everything else uses the
default cache, whose `add` keeps its usual meaning.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django_redis.cache import RedisCache
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

_COUNT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('TTL', KEYS[1]) < 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return count
"""


_MAX_PENDING = 10_000
_lease_size: ContextVar[int] = ContextVar("rate_counter_lease_size", default=1)


@contextlib.contextmanager
def counts_leased(size: int) -> Iterator[None]:
    """Counts taken inside this block may be leased `size` at a time (see the module docstring)."""
    token = _lease_size.set(max(1, size))
    try:
        yield
    finally:
        _lease_size.reset(token)


@dataclass
class _Lease:
    next_count: int
    last_count: int
    ends_at: float  # monotonic; the counter's window is over by then


class RateCounterCache(RedisCache):
    """django-redis with `add` + `incr` fused for counters (see the module docstring)."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._expiry_of: dict[str, int] = {}
        self._scripts: dict[int, Any] = {}
        self._leases: dict[str, _Lease] = {}  # one cache instance per thread (Django's CacheHandler)

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None, **_: Any) -> bool:
        if len(self._expiry_of) > _MAX_PENDING:  # only reached if callers stray from add-then-incr/get
            self._expiry_of.clear()
        seconds = self.default_timeout if timeout is DEFAULT_TIMEOUT else timeout
        self._expiry_of[self.client.make_key(key, version=version)] = max(0, int(seconds or 0))
        return False

    def get(self, key: Any, default: Any = None, version: int | None = None, **kwargs: Any) -> Any:
        self._expiry_of.pop(self.client.make_key(key, version=version), None)
        return super().get(key, default, version=version, **kwargs)

    def incr(self, key: Any, delta: int = 1, version: int | None = None, **_: Any) -> int:
        redis_key = self.client.make_key(key, version=version)
        expiry = self._expiry_of.pop(redis_key, int(self.default_timeout or 0))
        lease_size = _lease_size.get()
        if delta != 1 or lease_size == 1:
            return self._count(redis_key, delta, expiry)
        now = time.monotonic()
        lease = self._leases.get(redis_key)
        if lease is not None and lease.next_count <= lease.last_count and now < lease.ends_at:
            lease.next_count += 1
            return lease.next_count - 1
        if len(self._leases) > _MAX_PENDING:
            self._leases = {name: held for name, held in self._leases.items() if now < held.ends_at}
        last = self._count(redis_key, lease_size, expiry)
        self._leases[redis_key] = _Lease(next_count=last - lease_size + 2, last_count=last, ends_at=now + expiry)
        return last - lease_size + 1

    def _count(self, redis_key: str, delta: int, expiry: int) -> int:
        client = self.client.get_client(write=True)
        script = self._scripts.get(id(client))
        if script is None:
            script = self._scripts[id(client)] = client.register_script(_COUNT)
        try:
            return int(script(keys=[redis_key], args=[delta, expiry], client=client))
        except (RedisConnectionError, RedisTimeoutError) as error:
            raise ConnectionInterrupted(connection=client) from error
