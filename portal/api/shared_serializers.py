"""One bound serializer per class and thread, for the endpoints a profile shows hot.

DRF deep-copies a serializer's declared fields every time one is instantiated (about a
millisecond for an order's 25 fields on the order path, bench/README.md). A serializer whose
fields are bound once can validate (`run_validation`) and render (`to_representation`) any
number of times: neither keeps state on the instance. Each thread gets its own instance, so
threaded workers never share one. Only for serializers that read no context (no request,
no hyperlinks).
"""

from __future__ import annotations

import threading
from typing import TypeVar

from rest_framework import serializers

S = TypeVar("S", bound=serializers.Serializer)

_local = threading.local()


def shared_serializer(cls: type[S]) -> S:
    """This thread's instance of `cls`, its fields bound on first use."""
    cache: dict[type, serializers.Serializer] = _local.__dict__.setdefault("serializers", {})
    instance = cache.get(cls)
    if instance is None:
        instance = cache[cls] = cls()
        instance.fields  # noqa: B018 - bind the fields now, once
    return instance  # type: ignore[return-value]
