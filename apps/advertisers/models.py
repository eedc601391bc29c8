from __future__ import annotations

import ipaddress
from datetime import datetime

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models


def validate_cidr(value: str) -> None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ValidationError(f"{value!r} is not an IP address or CIDR") from exc


class AdvertiserStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    INACTIVE = "inactive", "Inactive"


class Advertiser(models.Model):
    name = models.CharField(max_length=200, unique=True)
    status = models.CharField(
        max_length=16, choices=AdvertiserStatus.choices, default=AdvertiserStatus.ACTIVE
    )
    # Postback security: the token is stored hashed and shown once when (re)generated.
    # Indexed: reversals and pixels find the advertiser a token belongs to by its hash.
    postback_token_hash = models.CharField(max_length=64, blank=True, editable=False, db_index=True)
    postback_token_prefix = models.CharField(max_length=16, blank=True, editable=False)
    require_token = models.BooleanField(
        default=True, help_text="Refuse postbacks without the advertiser's token."
    )
    # Optional HMAC-signed postbacks: the shared secret is stored encrypted (apps.common.crypto),
    # as we must compute the signature ourselves to check it.
    signing_secret_encrypted = models.TextField(blank=True, editable=False)
    signing_secret_prefix = models.CharField(max_length=16, blank=True, editable=False)
    signing_secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    # After a rotation the replaced secret stays valid until previous_signing_secret_expires_at
    # (ADVERTISER_SIGNING_SECRET_OVERLAP_HOURS), so the advertiser can deploy the new one first.
    previous_signing_secret_encrypted = models.TextField(blank=True, editable=False)
    previous_signing_secret_prefix = models.CharField(max_length=16, blank=True, editable=False)
    previous_signing_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    require_signature = models.BooleanField(
        default=False,
        help_text="Refuse postbacks without a valid HMAC signature (X-OpenCPA-Signature).",
    )
    scrub_window_days = models.PositiveSmallIntegerField(
        default=30,
        help_text="How many days after a conversion the advertiser may reject (scrub) it "
        "themselves; 0: never.",
    )
    ip_allowlist = ArrayField(
        models.CharField(max_length=64, validators=[validate_cidr]),
        blank=True,
        default=list,
        help_text="IPs or CIDRs allowed to send postbacks; empty allows any IP.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def previous_signing_secret_valid_until(self, now: datetime) -> datetime | None:
        """Until when the secret replaced by the last rotation still works; None once it no
        longer does (or there is none)."""
        expires_at = self.previous_signing_secret_expires_at
        if not self.previous_signing_secret_encrypted or expires_at is None or expires_at <= now:
            return None
        return expires_at
