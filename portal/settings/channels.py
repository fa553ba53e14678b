"""Channels: Redis channel layer in the full stack, in-memory when embedded."""

from typing import Any

from .base import EMBEDDED, REDIS_URL

CHANNEL_LAYERS: dict[str, dict[str, Any]]

# https://channels.readthedocs.io/en/latest/topics/channel_layers.html
if EMBEDDED:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1500, "expiry": 10},
        }
    }
