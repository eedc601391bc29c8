from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    STAFF = "staff", "Network staff"
    ADVERTISER = "advertiser", "Advertiser user"
    AFFILIATE = "affiliate", "Affiliate user"


class User(AbstractUser):
    """A person or integration. Its role follows from which account it belongs to."""

    advertiser = models.ForeignKey(
        "advertisers.Advertiser",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="users",
    )
    affiliate = models.ForeignKey(
        "partners.Affiliate",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="users",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~(models.Q(advertiser__isnull=False) & models.Q(affiliate__isnull=False)),
                name="user_one_account_at_most",
            ),
        ]

    @property
    def role(self) -> Role | None:
        if self.affiliate_id is not None:
            return Role.AFFILIATE
        if self.advertiser_id is not None:
            return Role.ADVERTISER
        if self.is_staff:
            return Role.STAFF
        return None


class ApiKey(models.Model):
    """An API key. Only its SHA-256 is stored; the key itself is shown once, at creation."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise the key.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
