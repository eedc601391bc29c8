"""Settings, grouped by topic, read from the environment (django-environ).

A missing required setting fails loudly at start: SECRET_KEY has no default outside DEBUG.
"""

from __future__ import annotations

import ipaddress
from decimal import Decimal, InvalidOperation
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Core -------------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)
if DEBUG:
    SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-secret-key-change-me")
else:
    SECRET_KEY = env("SECRET_KEY", default="")
    if not SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "apps.accounts",
    "apps.advertisers",
    "apps.partners",
    "apps.offers",
    "apps.tracking",
    "apps.conversions",
    "apps.quality",
    "apps.commissions",
    "apps.stats",
    "apps.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# --- Database ---------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/opencpa"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["OPTIONS"] = {
    **DATABASES["default"].get("OPTIONS", {}),
    # Django turns psycopg's prepared statements off (prepare_threshold=None), which also voids
    # an explicit execute(prepare=True): the hot-path statements of apps.common.db were parsed and
    # planned on every call. A threshold no query reaches prepares those and nothing else (the
    # ORM's client-side cursors never prepare).
    "prepare_threshold": 2**31 - 1,
    # PostgreSQL re-plans a prepared statement on every call while it guesses a custom plan is
    # cheaper, which it does for the quality history query: half a postback's database time went
    # to planning. The hot-path statements are written for their generic plans (partitions pruned
    # at execution). Only server-prepared statements and PL/pgSQL use the plan cache.
    "options": "-c plan_cache_mode=force_generic_plan",
}
if not DATABASES["default"]["ENGINE"].endswith("postgresql"):
    raise ImproperlyConfigured("OpenCPA runs on PostgreSQL only (DATABASE_URL=postgres://...)")

# --- Redis and Celery -------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis redelivers an unacknowledged (acks_late) task after this many seconds.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULE = {
    "tracking-drain-clicks": {
        "task": "tracking.drain_clicks",
        "schedule": env.float("CLICK_DRAIN_EVERY_SECONDS", default=1.0),
        "options": {"expires": 10},
    },
    "tracking-maintain-partitions": {"task": "tracking.maintain_partitions", "schedule": 3600},
    "offers-reconcile-caps": {"task": "offers.reconcile_caps", "schedule": 300},
    "quality-rescore-recent": {
        "task": "quality.rescore_recent",
        "schedule": env.int("QUALITY_RESCORE_EVERY_SECONDS", default=600),
        "options": {"expires": 300},
    },
    # Works through the accrual queue (filled by a trigger on conversions): the ledger follows a
    # conversion within seconds, without a message per conversion.
    "commissions-accrue": {
        "task": "commissions.accrue_pending",
        "schedule": env.float("COMMISSIONS_ACCRUE_EVERY_SECONDS", default=5.0),
        "options": {"expires": 30},
    },
    # Idempotent: rebuilding a period that already has its statements changes nothing.
    "commissions-build-statements": {"task": "commissions.build_statements", "schedule": 3600},
    "commissions-ledger-check": {"task": "commissions.ledger_check", "schedule": 86400},
    # The postback outbox: due first attempts, retries, rows whose worker died (lease expired).
    "conversions-deliver-due-postbacks": {
        "task": "conversions.deliver_due_postbacks",
        "schedule": env.float("OUTBOUND_POSTBACK_POLL_SECONDS", default=5.0),
        "options": {"expires": 10},
    },
    "conversions-pause-failing-postbacks": {
        "task": "conversions.pause_failing_postbacks",
        "schedule": 600,
        "options": {"expires": 300},
    },
    "conversions-prune-inbound-log": {
        "task": "conversions.prune_inbound_log",
        "schedule": 3600,
        "options": {"expires": 1800},
    },
}

# --- Commissions ------------------------------------------------------------------------------
# Conversion ids per accrual transaction (one INSERT ... SELECT per kind and id range).
COMMISSIONS_ACCRUE_BATCH_SIZE = env.int("COMMISSIONS_ACCRUE_BATCH_SIZE", default=50_000)
# Network minimum payout per statement currency (an affiliate's own minimum_payout wins);
# below it a statement rolls over into the next period.
COMMISSIONS_MINIMUM_PAYOUT = {"default": "50", "JPY": "5000", "KRW": "50000", "INR": "4000"}
# ledger_check leaves conversions changed this recently to the accrual job.
COMMISSIONS_CHECK_GRACE_MINUTES = env.int("COMMISSIONS_CHECK_GRACE_MINUTES", default=10)
# The beat job works through the accrual queue in batches of COMMISSIONS_ACCRUE_BATCH_SIZE and
# re-enqueues itself after this many (a backlog never makes one task run for ever).
COMMISSIONS_ACCRUE_MAX_BATCHES = env.int("COMMISSIONS_ACCRUE_MAX_BATCHES", default=20)
# Referral commissions: the percent of a referred affiliate's commissions its referrer earns, and
# for how many days after the referred affiliate joined (0: no end). An affiliate's own
# referral_percent / referral_ends_at win. 0 percent: no referral commissions.
try:
    COMMISSIONS_REFERRAL_PERCENT = Decimal(env.str("COMMISSIONS_REFERRAL_PERCENT", default="0"))
except InvalidOperation as exc:
    raise ImproperlyConfigured("COMMISSIONS_REFERRAL_PERCENT must be a number") from exc
if not Decimal(0) <= COMMISSIONS_REFERRAL_PERCENT <= Decimal(100):
    raise ImproperlyConfigured("COMMISSIONS_REFERRAL_PERCENT must be between 0 and 100")
COMMISSIONS_REFERRAL_DAYS = env.int("COMMISSIONS_REFERRAL_DAYS", default=365)

# --- Time and language ------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Request limits ---------------------------------------------------------------------------
# Postbacks and API calls are small; a larger body is refused with 413 before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=64 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200

# --- Tracking ---------------------------------------------------------------------------------
# Proxies whose X-Forwarded-For we believe when finding the shopper's IP.
TRUSTED_PROXIES = [
    ipaddress.ip_network(cidr, strict=False)
    for cidr in env.list("TRUSTED_PROXIES", default=["127.0.0.1/32", "::1/128"])
]
# Where a click goes when neither the offer nor anything else gives a safe URL.
NETWORK_FALLBACK_URL = env("NETWORK_FALLBACK_URL", default="/offer-unavailable/")
CLICK_COOKIE_NAME = "ocpa_cid"
# The click path's in-process catalog: how often each process checks for changes, and the
# longest it keeps an entry if it cannot ask Redis.
CATALOG_CHECK_SECONDS = env.float("CATALOG_CHECK_SECONDS", default=1.0)
CATALOG_MAX_AGE_SECONDS = env.float("CATALOG_MAX_AGE_SECONDS", default=30.0)
# The click buffer and its drain.
CLICK_PENDING_TTL_SECONDS = env.int("CLICK_PENDING_TTL_SECONDS", default=600)
CLICK_DRAIN_BATCH_SIZE = env.int("CLICK_DRAIN_BATCH_SIZE", default=5000)
CLICK_DRAIN_MAX_BATCHES = env.int("CLICK_DRAIN_MAX_BATCHES", default=200)
CLICK_DRAIN_CLAIM_IDLE_MS = env.int("CLICK_DRAIN_CLAIM_IDLE_MS", default=30_000)
CLICK_RETENTION_DAYS = env.int("CLICK_RETENTION_DAYS", default=180)
CLICK_PARTITIONS_AHEAD_DAYS = env.int("CLICK_PARTITIONS_AHEAD_DAYS", default=7)
UNIQUE_CLICK_WINDOW_SECONDS = env.int("UNIQUE_CLICK_WINDOW_SECONDS", default=24 * 3600)
# Public base URL used in tracking links handed to affiliates.
TRACKING_BASE_URL = env("TRACKING_BASE_URL", default="http://127.0.0.1:8000")

# Extra endpoints for bench/ only (a bare 302 view); off everywhere else.
BENCH_ENDPOINTS = env.bool("BENCH_ENDPOINTS", default=False)

# --- Secrets at rest ---------------------------------------------------------------------------
# Key material for secrets we must read back (HMAC keys); falls back to SECRET_KEY.
FIELD_ENCRYPTION_KEY = env("FIELD_ENCRYPTION_KEY", default="")

# --- Inbound postbacks ------------------------------------------------------------------------
# The postback debugger keeps its rows this many days.
INBOUND_LOG_RETENTION_DAYS = env.int("INBOUND_LOG_RETENTION_DAYS", default=90)
# HMAC-signed postbacks: how far the request's timestamp may be from our clock.
POSTBACK_SIGNATURE_TOLERANCE_SECONDS = env.int("POSTBACK_SIGNATURE_TOLERANCE_SECONDS", default=300)
# After an advertiser's signing secret is rotated, the old one stays valid this long (0: not at
# all), so the advertiser can deploy the new one without refused postbacks.
ADVERTISER_SIGNING_SECRET_OVERLAP_HOURS = env.int(
    "ADVERTISER_SIGNING_SECRET_OVERLAP_HOURS", default=24
)
if not 0 <= ADVERTISER_SIGNING_SECRET_OVERLAP_HOURS <= 24 * 14:
    raise ImproperlyConfigured("ADVERTISER_SIGNING_SECRET_OVERLAP_HOURS must be 0 to 336")

# --- Outbound postbacks -----------------------------------------------------------------------
OUTBOUND_POSTBACK_TIMEOUT_SECONDS = env.float("OUTBOUND_POSTBACK_TIMEOUT_SECONDS", default=5.0)
OUTBOUND_POSTBACK_MAX_ATTEMPTS = env.int("OUTBOUND_POSTBACK_MAX_ATTEMPTS", default=8)
# The published retry schedule: seconds before attempt 2, 3, ... (immediately, then ~5 s, 5 min,
# 30 min, 2 h, 5 h, 10 h, 10 h), with up to 10% jitter so a recovered receiver is not stampeded.
OUTBOUND_POSTBACK_BACKOFF_SECONDS = [
    int(value)
    for value in env.list(
        "OUTBOUND_POSTBACK_BACKOFF_SECONDS",
        default=["5", "300", "1800", "7200", "18000", "36000", "36000"],
    )
]
# New outbox rows are handed to the workers in one message per web process and this window
# (first attempt "immediately": within it), not one message per conversion: a Celery publish cost
# more CPU than the rest of a postback's Python. 0 sends each at once. Rows a lost message leaves
# behind are delivered by the beat job (OUTBOUND_POSTBACK_POLL_SECONDS).
OUTBOUND_KICK_WINDOW_SECONDS = env.float("OUTBOUND_KICK_WINDOW_SECONDS", default=0.1)
# A postback URL whose deliveries all failed for this long is paused; the affiliate is told.
OUTBOUND_POSTBACK_PAUSE_AFTER_HOURS = env.int("OUTBOUND_POSTBACK_PAUSE_AFTER_HOURS", default=72)
# Delivery attempt log retention.
OUTBOUND_DELIVERY_RETENTION_DAYS = env.int("OUTBOUND_DELIVERY_RETENTION_DAYS", default=90)
# Outbox rows that are done with (delivered, given up, cancelled) are pruned this many days after
# they settled. At least 30: a backfill and a resume reach 30 days back, and must find the rows
# already written there so that nothing is sent twice.
OUTBOUND_OUTBOX_RETENTION_DAYS = env.int("OUTBOUND_OUTBOX_RETENTION_DAYS", default=90)
if OUTBOUND_OUTBOX_RETENTION_DAYS < 30:
    raise ImproperlyConfigured("OUTBOUND_OUTBOX_RETENTION_DAYS must be at least 30")
# Test fires (API and admin) per affiliate per minute: each is a real call to a URL it chose.
OUTBOUND_TEST_FIRE_PER_MINUTE = env.int("OUTBOUND_TEST_FIRE_PER_MINUTE", default=10)
# Resends an affiliate asks for (API) per minute: each one calls its URLs again.
OUTBOUND_RESEND_PER_MINUTE = env.int("OUTBOUND_RESEND_PER_MINUTE", default=30)
# Only for tests that run a receiver on this machine: never set in production.
OUTBOUND_ALLOW_LOOPBACK = env.bool("OUTBOUND_ALLOW_LOOPBACK", default=False)

# --- Lead quality (apps.quality) ---------------------------------------------------------------
# Defaults for offers without a quality profile of their own (staff edit profiles in the admin).
QUALITY_REJECT_BELOW = env.int("QUALITY_REJECT_BELOW", default=20)
# A conversion later than this after its click is implausibly long (goals may set their own).
QUALITY_MAX_SECONDS_TO_CONVERT = env.float("QUALITY_MAX_SECONDS_TO_CONVERT", default=86_400.0)
# Reports count a conversion as flagged when it scores below this.
QUALITY_FLAG_BELOW = env.int("QUALITY_FLAG_BELOW", default=50)
# The behavioural re-score looks at conversions of the last so many hours.
QUALITY_RESCORE_WINDOW_HOURS = env.int("QUALITY_RESCORE_WINDOW_HOURS", default=24)
# When the re-score job would reject an already approved conversion: False (default) keeps it and
# records a note for review; True reverses it (a reversal entry in the ledger) and notes that.
QUALITY_RESCORE_REVERSES_APPROVED = env.bool("QUALITY_RESCORE_REVERSES_APPROVED", default=False)
# Whether affiliates see the evidence behind their conversions' reason codes in the API.
QUALITY_SHOW_EVIDENCE_TO_AFFILIATES = env.bool("QUALITY_SHOW_EVIDENCE_TO_AFFILIATES", default=False)

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "OpenCPA API",
    "DESCRIPTION": "Affiliate, advertiser and network staff API.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "ENUM_NAME_OVERRIDES": {
        "OfferStatusEnum": "apps.offers.models.OfferStatus",
        "ConversionStatusEnum": "apps.offers.models.ConversionStatus",
        "AffiliateStatusEnum": "apps.partners.models.AffiliateStatus",
    },
}

# --- Logging ----------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}
