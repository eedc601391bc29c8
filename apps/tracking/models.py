from __future__ import annotations

from django.db import models


class Click(models.Model):
    """One recorded click. Written only through apps.tracking.click_store.

    The table is partitioned by day on created_at (migration 0002): its primary key in PostgreSQL
    is (id, created_at) and click ids are unique per (click_id, created_at); the click id carries
    its creation second, so a lookup by click id touches one partition. Foreign keys are not
    enforced in the database: the drain writes thousands of rows a second and ids come from the
    catalog, not from the request.
    """

    id = models.BigAutoField(primary_key=True)
    click_id = models.CharField(max_length=32)
    offer = models.ForeignKey(
        "offers.Offer", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    affiliate = models.ForeignKey(
        "partners.Affiliate", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    created_at = models.DateTimeField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    country = models.CharField(max_length=2, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    referrer = models.CharField(max_length=1024, blank=True)
    device_type = models.CharField(max_length=10, blank=True)
    os = models.CharField(max_length=10, blank=True)
    browser = models.CharField(max_length=32, blank=True)
    is_bot = models.BooleanField(default=False)
    non_browser = models.BooleanField(
        default=False, help_text="Empty user agent, HEAD or a prefetch: redirected, not billable."
    )
    is_unique = models.BooleanField(default=True)
    fallback_reason = models.CharField(
        max_length=32, blank=True, help_text="Why the click went to a fallback URL, if it did."
    )
    origin_offer_id = models.BigIntegerField(
        null=True, blank=True, help_text="The offer the link named, when a fallback offer served."
    )
    sub1 = models.CharField(max_length=255, blank=True)
    sub2 = models.CharField(max_length=255, blank=True)
    sub3 = models.CharField(max_length=255, blank=True)
    sub4 = models.CharField(max_length=255, blank=True)
    sub5 = models.CharField(max_length=255, blank=True)
    source_id = models.CharField(max_length=255, blank=True)
    aff_click_id = models.CharField(max_length=255, blank=True)
    creative_id = models.CharField(max_length=64, blank=True)
    url_id = models.CharField(max_length=64, blank=True)
    # The visitor's device key (apps.quality.leads.device_key: a keyed hash of user agent and
    # IP), computed when the click is stored: a postback's lead-quality history can then be
    # read in the same statement as its click. Empty for clicks stored before it existed.
    ua_ip_hash = models.CharField(max_length=64, blank=True, default="", db_default="")

    class Meta:
        indexes = [
            models.Index(fields=["affiliate", "created_at"], name="click_aff_time"),
            models.Index(fields=["offer", "created_at"], name="click_offer_time"),
        ]

    def __str__(self) -> str:
        return self.click_id
