"""Process-local copies of shared-cache entries that Redis itself tells us to drop.

Redis client-side caching in broadcast mode (https://redis.io/docs/latest/develop/reference/client-side-caching/):
one connection subscribes to `__redis__:invalidate`; a second one turns tracking on for a
key prefix with its messages redirected to the first. From then on Redis names every key
under the prefix that any client sets, deletes or lets expire, and a flush clears all.

Before each lookup the subscriber's socket is polled without waiting (one `select`), and
the named copies are dropped, so a change made in any process is honoured by the next
request that starts after Redis sent the message. A copy stored while a message was on its
way is refused (the generation check; the process's own write of a fresh entry counts
too, so an entry is kept from its second lookup on), and while the connections are down nothing is
served from memory at all: the caller falls back to the shared cache.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import redis
import structlog
from redis.connection import ConnectionInterface

logger = structlog.get_logger("portal.tracked_cache")

INVALIDATION_CHANNEL = "__redis__:invalidate"


@dataclass
class _Connections:
    pid: int
    subscriber: ConnectionInterface
    tracker: ConnectionInterface
    subscriber_id: int
    checked_at: float = field(default_factory=time.monotonic)


class TrackedLocalCache:
    """Bytes under `prefix` kept in process memory for at most `max_age` seconds, and only
    while Redis's invalidation messages are being received."""

    def __init__(self, url: str, prefix: str, *, max_age: float, max_entries: int = 10_000, check_every: float = 5):
        # RESP2: the invalidations arrive as plain pub/sub replies to poll, not RESP3 pushes.
        self._pool = redis.ConnectionPool.from_url(url, protocol=2)
        self._prefix = prefix
        self._max_age = max_age
        self._max_entries = max_entries
        self._check_every = check_every
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[bytes, float]] = {}
        self._connections: _Connections | None = None
        self._retry_at = 0.0
        self.generation = 0

    def get(self, key: str) -> bytes | None:
        """The local copy of `key`, or None (absent, stale, or not tracking right now)."""
        with self._lock:
            if not self._in_step():
                return None
            entry = self._entries.get(key)
            if entry is None:
                return None
            value, stored_at = entry
            if time.monotonic() - stored_at > self._max_age:
                del self._entries[key]
                return None
            return value

    def current_generation(self) -> int:
        """Read before fetching from the shared cache; hand it to `remember`."""
        with self._lock:
            self._in_step()
            return self.generation

    def remember(self, key: str, value: bytes, generation: int) -> None:
        """Keep `value` unless an invalidation arrived since `generation` was read."""
        with self._lock:
            if not self._in_step() or self.generation != generation:
                return
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = (value, time.monotonic())

    def forget(self, keys: list[str]) -> None:
        """Drop copies this process knows are stale, without waiting for Redis's message."""
        with self._lock:
            self.generation += 1
            for key in keys:
                self._entries.pop(key, None)

    def _in_step(self) -> bool:
        """Apply pending invalidations; False when the copies cannot be trusted."""
        connections = self._connections
        if connections is not None and connections.pid != os.getpid():  # forked: not ours
            self._connections = connections = None
            self._entries.clear()
        if connections is None:
            if time.monotonic() < self._retry_at:
                return False
            try:
                self._connections = connections = self._connect()
            except redis.RedisError as error:
                self._retry_at = time.monotonic() + 1
                logger.warning("tracked_cache_unavailable", error=str(error))
                return False
        try:
            while connections.subscriber.can_read(timeout=0):
                self._apply(connections.subscriber.read_response())
            if time.monotonic() - connections.checked_at > self._check_every:
                connections.tracker.send_command("PING")
                connections.tracker.read_response()
                connections.checked_at = time.monotonic()
        except (redis.RedisError, OSError) as error:
            logger.warning("tracked_cache_lost", error=str(error))
            self._drop_connections()
            return False
        return True

    def _apply(self, message: list) -> None:
        if not (isinstance(message, list) and len(message) == 3 and message[0] == b"message"):
            return
        keys = message[2]
        self.generation += 1
        if keys is None:  # FLUSHDB / FLUSHALL
            self._entries.clear()
            return
        for key in keys:
            self._entries.pop(key.decode() if isinstance(key, bytes) else key, None)

    def _connect(self) -> _Connections:
        subscriber = self._pool.make_connection()
        tracker = self._pool.make_connection()
        try:
            subscriber.send_command("CLIENT", "ID")
            subscriber_id = subscriber.read_response()
            subscriber.send_command("SUBSCRIBE", INVALIDATION_CHANNEL)
            subscriber.read_response()
            tracker.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", subscriber_id, "BCAST", "PREFIX", self._prefix)
            tracker.read_response()
        except BaseException:
            subscriber.disconnect()
            tracker.disconnect()
            raise
        self._entries.clear()  # whatever happened while we were not listening is unknown
        self.generation += 1
        return _Connections(pid=os.getpid(), subscriber=subscriber, tracker=tracker, subscriber_id=subscriber_id)

    def _drop_connections(self) -> None:
        connections, self._connections = self._connections, None
        self._entries.clear()
        self.generation += 1
        if connections is not None and connections.pid == os.getpid():
            connections.subscriber.disconnect()
            connections.tracker.disconnect()
