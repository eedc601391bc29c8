"""Offers that have taken pixel conversions keep taking those kinds of pixel.

Offer.pixel_methods (offers 0008) starts empty, which refuses every pixel; an offer whose
advertiser already used pixels would lose them without anyone choosing to. The scan of the
conversions table runs once.
"""

from django.db import migrations

PIXEL_METHODS = ("pixel", "iframe", "js")


def offers_keep_their_pixels(apps, schema_editor):
    Conversion = apps.get_model("conversions", "Conversion")
    Offer = apps.get_model("offers", "Offer")
    used: dict[int, set[str]] = {}
    pairs = (
        Conversion.objects.filter(method__in=PIXEL_METHODS)
        .values_list("offer_id", "method")
        .distinct()
    )
    for offer_id, method in pairs:
        used.setdefault(offer_id, set()).add(method)
    for offer in Offer.objects.filter(pk__in=used):
        # Added to what staff may have ticked since offers 0008.
        methods = used[offer.pk] | set(offer.pixel_methods)
        offer.pixel_methods = [m for m in PIXEL_METHODS if m in methods]
        offer.save(update_fields=["pixel_methods"])


class Migration(migrations.Migration):
    dependencies = [
        ("conversions", "0010_outbox_lease"),
        ("offers", "0008_offer_pixel_methods"),
    ]

    operations = [
        migrations.RunPython(offers_keep_their_pixels, migrations.RunPython.noop, elidable=True),
    ]
