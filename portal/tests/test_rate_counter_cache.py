"""django-ratelimit's counters in Redis: one round trip per count, expiring with the window,
readable without counting, and never failing closed when a counter is lost."""

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import RequestFactory
from django_ratelimit.core import get_usage

from portal.cache import RateCounterCache, counts_leased

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (REDIS_URL); CI runs on it")
pytestmark = [needs_redis]


def _usage(*, increment: bool, rate: str = "5/h", key: str = "caller-1"):
    return get_usage(
        RequestFactory().get("/"), group="counter-test", key=lambda group, request: key, rate=rate, increment=increment
    )


def test_rate_limits_count_in_the_fused_counter_cache():
    assert settings.RATELIMIT_USE_CACHE == "ratelimit"
    assert type(caches["ratelimit"]).__name__ == "RateCounterCache"


def test_each_count_is_one_round_trip_and_counts_up_to_the_limit(redis_commands):
    counts = [_usage(increment=True)["count"] for _ in range(6)]
    assert counts == [1, 2, 3, 4, 5, 6]
    assert len(redis_commands) == 6
    assert _usage(increment=False)["should_limit"] is True


def test_a_counter_expires_with_its_window():
    _usage(increment=True, rate="5/m")
    client = caches["ratelimit"].client.get_client(write=True)
    (counter,) = [key for key in client.scan_iter(match="*rl:*") if client.get(key) == b"1"]
    assert 0 < client.ttl(counter) <= 60 + 5  # the window plus django-ratelimit's fudge


def test_reading_without_counting_sees_zero_and_creates_nothing():
    client = caches["ratelimit"].client.get_client(write=True)
    before = set(client.scan_iter(match="*rl:*"))
    assert _usage(increment=False, key="never-seen")["count"] == 0
    assert set(client.scan_iter(match="*rl:*")) == before
    _usage(increment=True, key="seen")
    assert _usage(increment=False, key="seen")["count"] == 1


def test_a_counter_lost_mid_window_starts_again_instead_of_refusing_everyone():
    assert _usage(increment=True, key="lost")["count"] == 1
    caches["ratelimit"].clear()  # Redis restarted or evicted the key
    again = _usage(increment=True, key="lost")
    assert again["count"] == 1 and again["should_limit"] is False


def _ratelimit_params() -> dict:
    config = settings.CACHES["ratelimit"]
    return {key: value for key, value in config.items() if key not in ("BACKEND", "LOCATION")}


def test_leased_counts_take_one_round_trip_per_block_and_stay_consecutive(redis_commands):
    with counts_leased(4):
        counts = [_usage(increment=True, rate="1000/h", key="leased")["count"] for _ in range(8)]
    assert counts == [1, 2, 3, 4, 5, 6, 7, 8]
    assert len(redis_commands) == 2


def test_processes_leasing_counts_never_admit_more_than_the_limit_together():
    first, second = (
        RateCounterCache(settings.REDIS_URL, _ratelimit_params()),
        RateCounterCache(settings.REDIS_URL, _ratelimit_params()),
    )
    admitted, handed_out = 0, []
    for turn in range(40):  # the caller's requests land on both processes in turn
        process = first if turn % 2 == 0 else second
        process.add("counter", 1, 65)
        with counts_leased(4):
            count = process.incr("counter")
        handed_out.append(count)
        admitted += count <= 10
    assert len(set(handed_out)) == len(handed_out), "a count is never handed out twice"
    assert 10 - 4 < admitted <= 10, "at most the limit, minus less than a block per other process"
