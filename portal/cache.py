"""The Redis cache django-ratelimit counts in: one round trip per count instead of two.

django-ratelimit's `get_usage` calls `add(key, initial, period)` and, when the counter
already exists (every request but a window's first), `incr(key)`: two round trips on every
API call and sign-in. Here `add` only notes the counter's expiry and answers "exists"
without asking Redis; `incr` then creates or increments the counter and sets that expiry
in one atomic script. A read without counting (`add(key, 0)`, then `get(key, 0)`) still
reads 0 for a missing counter, and a counter lost mid-window (Redis restarted) starts
again at 1 instead of failing closed.

Only counters live in this cache alias (`CACHES["ratelimit"]`); everything else uses the
default cache, whose `add` keeps its usual meaning.
"""

from __future__ import annotations

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


class RateCounterCache(RedisCache):
    """django-redis with `add` + `incr` fused for counters (see the module docstring)."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._expiry_of: dict[str, int] = {}
        self._scripts: dict[int, Any] = {}

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
        client = self.client.get_client(write=True)
        script = self._scripts.get(id(client))
        if script is None:
            script = self._scripts[id(client)] = client.register_script(_COUNT)
        try:
            return int(script(keys=[redis_key], args=[delta, expiry], client=client))
        except (RedisConnectionError, RedisTimeoutError) as error:
            raise ConnectionInterrupted(connection=client) from error
