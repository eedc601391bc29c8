"""Test settings: the real PostgreSQL and Redis, on a database and Redis db of their own."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")

from config.settings.base import *  # noqa: F403
from config.settings.base import REDIS_URL, env


def _redis_db(url: str, db: int) -> str:
    base, _, tail = url.rpartition("/")
    return f"{base}/{db}" if tail.isdigit() else f"{url.rstrip('/')}/{db}"


# A separate Redis db, so tests never touch (or are touched by) a running dev worker's queue.
REDIS_URL = env("TEST_REDIS_URL", default=_redis_db(REDIS_URL, 15))
CELERY_BROKER_URL = REDIS_URL
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user fixtures
# A server a flow test starts is told its own address (the offer page's pixel code names it).
TRACKING_BASE_URL = env("TEST_TRACKING_BASE_URL", default="http://testserver")
# Each commit's outbox rows are queued at once, so tests see the message right after the commit
# (the window itself: tests/conversions/test_outbox.py).
OUTBOUND_KICK_WINDOW_SECONDS = 0.0
