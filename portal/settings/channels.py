"""Channels: a Redis channel layer in the full stack, in-memory when embedded.

`CHANNEL_LAYER` picks the Redis layer: `pubsub` (Redis PUB/SUB; the default) or `core`
(channels-redis' list-based layer, bounded per channel by `capacity`). `bench/ws_fanout`
measured both: PUB/SUB costs daphne half the CPU per delivery and delivers twice as much at
saturation (bench/README.md).
"""

from typing import Any
from urllib.parse import urlparse

from .base import EMBEDDED, REDIS_URL, env

CHANNEL_LAYERS: dict[str, dict[str, Any]]
CHANNEL_LAYER = env.str("CHANNEL_LAYER", default="pubsub")
#: PUB/SUB channels ignore Redis' database number: the prefix keeps deployments (and test
#: runs) that share a Redis apart. By default it names the database, like the other layer.
CHANNEL_LAYER_PREFIX = env.str(
    "CHANNEL_LAYER_PREFIX", default=f"tradeport{(urlparse(REDIS_URL).path or '/0').strip('/') or '0'}"
)
#: redis-py's own default read timeout (5 s) equals the core layer's blocking pop: a quiet
#: minute then raised timeouts in the receiving loop.
_REDIS_HOST = {"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": 5}

# https://channels.readthedocs.io/en/latest/topics/channel_layers.html
if EMBEDDED:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
elif CHANNEL_LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [_REDIS_HOST], "prefix": CHANNEL_LAYER_PREFIX},
        }
    }
elif CHANNEL_LAYER == "core":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [_REDIS_HOST], "capacity": 1500, "expiry": 10, "prefix": CHANNEL_LAYER_PREFIX},
        }
    }
else:
    raise ValueError(f"CHANNEL_LAYER must be 'pubsub' or 'core', not {CHANNEL_LAYER!r}.")
