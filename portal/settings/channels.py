"""Channels: a Redis channel layer in the full stack, in-memory when embedded.

`CHANNEL_LAYER` picks the Redis layer: `core` (channels-redis' list-based layer, bounded per
channel by `capacity`; `group_send` drops silently past it) or `pubsub` (Redis PUB/SUB).
`bench/ws_fanout` measures both.
"""

from typing import Any

from .base import EMBEDDED, REDIS_URL, env

CHANNEL_LAYERS: dict[str, dict[str, Any]]
CHANNEL_LAYER = env.str("CHANNEL_LAYER", default="core")

# https://channels.readthedocs.io/en/latest/topics/channel_layers.html
if EMBEDDED:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
elif CHANNEL_LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
elif CHANNEL_LAYER == "core":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1500, "expiry": 10},
        }
    }
else:
    raise ValueError(f"CHANNEL_LAYER must be 'core' or 'pubsub', not {CHANNEL_LAYER!r}.")
