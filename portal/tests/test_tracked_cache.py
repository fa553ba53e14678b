"""Process-local API key records: served without a Redis round trip, dropped the moment Redis
reports a change from any process, and never trusted while the invalidation feed is down."""

import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from portal.api_keys import _local_copies, _record_cache_key
from portal.models import ApiKey
from portal.tests.test_api_errors import assert_problem
from portal.tracked_cache import TrackedLocalCache

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (REDIS_URL); CI runs on it")
pytestmark = [needs_redis, pytest.mark.django_db]
PREFIX = "tracked-test:"


@pytest.fixture
def other_process():
    """A separate Redis connection, as another web process would hold."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def tracked():
    local = TrackedLocalCache(settings.REDIS_URL, PREFIX, max_age=60)
    local.current_generation()  # connects and subscribes
    yield local
    local._drop_connections()


def _until(condition, seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def _remember(local: TrackedLocalCache, key: str, value: bytes) -> None:
    local.remember(key, value, local.current_generation())


def _until_copied(client: APIClient, api_key: ApiKey) -> str:
    """Call until this process holds the record (the call that fills the shared cache sees
    its own write come back as an invalidation, so the copy sticks from a later call on)."""
    record_key = cache.make_key(_record_cache_key(api_key.prefix))
    assert _until(lambda: client.get("/api/v1/me").status_code == 200 and _local_copies().get(record_key) is not None)
    return record_key


def test_repeated_calls_with_one_key_skip_the_record_round_trip(trader, make_api_key, redis_commands):
    raw_key, api_key = make_api_key(trader)
    client = APIClient(HTTP_X_API_KEY=raw_key)
    _until_copied(client, api_key)
    redis_commands.clear()
    assert client.get("/api/v1/me").status_code == 200
    assert "GET" not in redis_commands, redis_commands


def test_a_key_revoked_by_another_process_stops_working_here(trader, make_api_key, other_process):
    raw_key, api_key = make_api_key(trader)
    client = APIClient(HTTP_X_API_KEY=raw_key)
    record_key = _until_copied(client, api_key)
    # What another process's revocation does: the row, then the shared record.
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now() - timedelta(seconds=1))
    other_process.delete(record_key)
    assert _until(lambda: _local_copies().get(record_key) is None)
    assert_problem(client.get("/api/v1/me"), 401, "api_key_revoked")


def test_a_change_or_flush_from_another_connection_drops_local_copies(tracked, other_process):
    _remember(tracked, f"{PREFIX}a", b"A")
    _remember(tracked, f"{PREFIX}b", b"B")
    assert tracked.get(f"{PREFIX}a") == b"A"
    other_process.set(f"{PREFIX}a", b"changed")
    assert _until(lambda: tracked.get(f"{PREFIX}a") is None)
    assert tracked.get(f"{PREFIX}b") == b"B"
    other_process.flushdb()
    assert _until(lambda: tracked.get(f"{PREFIX}b") is None)


def test_keys_outside_the_prefix_do_not_disturb_the_copies(tracked, other_process):
    _remember(tracked, f"{PREFIX}a", b"A")
    generation = tracked.current_generation()
    other_process.set("unrelated:key", b"x")
    other_process.ping()
    time.sleep(0.05)
    assert tracked.get(f"{PREFIX}a") == b"A" and tracked.current_generation() == generation


def test_a_copy_fetched_while_a_change_was_on_its_way_is_not_kept(tracked, other_process):
    generation = tracked.current_generation()  # read, then fetch from the shared cache...
    other_process.set(f"{PREFIX}a", b"new")  # ...while another process changes the entry
    assert _until(lambda: tracked.current_generation() != generation)
    tracked.remember(f"{PREFIX}a", b"old", generation)
    assert tracked.get(f"{PREFIX}a") is None


def test_nothing_is_served_from_memory_while_the_invalidation_feed_is_down(tracked, other_process):
    _remember(tracked, f"{PREFIX}a", b"A")
    other_process.client_kill_filter(_id=tracked._connections.subscriber_id)
    assert _until(lambda: tracked.get(f"{PREFIX}a") is None)
    # It reconnects by itself and serves copies again, starting empty.
    assert _until(lambda: _remember(tracked, f"{PREFIX}a", b"A2") or tracked.get(f"{PREFIX}a") == b"A2", seconds=3)
