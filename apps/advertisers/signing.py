"""HMAC-signed postbacks, for advertisers who want more than a secret in a URL.

The advertiser sends two headers:

    X-OpenCPA-Timestamp: <unix seconds>
    X-OpenCPA-Signature: v1=<hex HMAC-SHA256(secret, message)>

    message = "<timestamp>\n<METHOD>\n<path>\n<query string, as sent>\n" + raw body

`<path>` is the path requested ("/postback", "/aff_lsr"), without the query string; the query
string is what follows "?", exactly as sent (not decoded, re-encoded or re-ordered), "" when there
is none; the body is the raw bytes sent (empty for a GET).

The timestamp must be within POSTBACK_SIGNATURE_TOLERANCE_SECONDS of our clock (a captured request
cannot be replayed later; within the window, a replay is a duplicate postback anyway), and the
signature is compared in constant time. Several `v1=` values, comma-separated, are accepted while
the advertiser rotates secrets on their side. The secret is issued by
apps.advertisers.services.advertiser_signing_secret_rotate (admin action "Rotate signing secret",
POST /api/v1/advertiser/signing-secret/); after a rotation the secret it replaced is accepted too
until previous_signing_secret_expires_at, so the advertiser can deploy the new one first.

Pixels (/pixel, /pixel/iframe, /pixel.js) are fired by the shopper's browser, which cannot sign:
they are never checked as signed, and an offer takes them only when its pixel_methods say so
(apps.conversions.pixel).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

from django.conf import settings

from apps.advertisers.models import Advertiser
from apps.common.crypto import SecretUnreadable, secret_decrypt
from apps.common.errors import DomainError
from apps.common.text import digits_int

TIMESTAMP_HEADER = "x-opencpa-timestamp"
SIGNATURE_HEADER = "x-opencpa-signature"


class SignatureRejected(DomainError):
    http_status = 403


def signing_message(
    *, timestamp: str, method: str, path: str, query_string: str, body: bytes
) -> bytes:
    # surrogateescape: a query string holding raw non-UTF-8 bytes (decoded with surrogateescape
    # by the view) is signed over the very bytes that were sent, and never raises here.
    head = f"{timestamp}\n{method.upper()}\n{path}\n{query_string}\n"
    return head.encode("utf-8", "surrogateescape") + body


def signature_compute(*, secret: str, message: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def advertiser_signature_check(
    *,
    advertiser: Advertiser,
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
) -> bool:
    """True when the request carries a valid signature; False when it carries none and the
    advertiser does not require one. Raises SignatureRejected otherwise: a signature that is
    present is always checked, even when optional."""
    timestamp = headers.get(TIMESTAMP_HEADER, "").strip()
    signature = headers.get(SIGNATURE_HEADER, "").strip()
    if not signature and not timestamp:
        if advertiser.require_signature:
            raise SignatureRejected("signature_required")
        return False
    if not advertiser.signing_secret_encrypted:
        raise SignatureRejected("signing_not_configured")
    sent_at = digits_int(timestamp, max_digits=12)
    if sent_at is None:
        raise SignatureRejected("bad_signature_timestamp")
    if abs(now.timestamp() - sent_at) > settings.POSTBACK_SIGNATURE_TOLERANCE_SECONDS:
        raise SignatureRejected("signature_expired")
    try:
        valid = [secret_decrypt(advertiser.signing_secret_encrypted)]
    except SecretUnreadable as exc:
        raise SignatureRejected("signing_not_configured") from exc
    valid += _previous_secret(advertiser, now=now)
    message = signing_message(
        timestamp=timestamp, method=method, path=path, query_string=query_string, body=body
    )
    expected = [signature_compute(secret=secret, message=message).encode() for secret in valid]
    # Compare every offered value with every valid secret's signature, each in constant time and
    # without stopping early on a match. Hex digits may come in either case.
    matched = False
    for offered in signature.split(",")[:5]:
        candidate = offered.strip().lower().encode("utf-8", "surrogateescape")
        for one in expected:
            matched |= hmac.compare_digest(candidate, one)
    if not matched:
        raise SignatureRejected("bad_signature")
    return True


def _previous_secret(advertiser: Advertiser, *, now: datetime) -> list[str]:
    """The secret replaced by the last rotation, while its overlap lasts; [] after that (or when
    it can no longer be decrypted: the current secret still works)."""
    if advertiser.previous_signing_secret_valid_until(now) is None:
        return []
    try:
        return [secret_decrypt(advertiser.previous_signing_secret_encrypted)]
    except SecretUnreadable:
        return []
