from __future__ import annotations

from functools import cache
from typing import Any

import redis
from django.conf import settings


@cache
def redis_client() -> Any:
    # Typed Any: redis-py's return types are a sync/async union that only adds casts here.
    """One pooled client per process; short timeouts so a sick Redis cannot stall a request."""
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        health_check_interval=30,
    )
