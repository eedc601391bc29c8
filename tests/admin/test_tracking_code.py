"""The offer page shows the advertiser the postback URL and the pixels to put on its side."""

from __future__ import annotations

from django.urls import reverse

from apps.offers.selectors import offer_tracking_code
from tests import factories

from .conftest import AdminWorld


def test_the_postback_and_the_ticked_pixels(admin_world: AdminWorld):
    w = admin_world
    w.offer_x.pixel_methods = ["pixel", "js"]
    w.offer_x.save()
    factories.GoalFactory(offer=w.offer_x, code="sale", is_default=False)
    pk = w.offer_x.pk
    assert offer_tracking_code(offer=w.offer_x) == [
        (
            "Server postback, from the advertiser's server (recommended)",
            "http://testserver/postback?click_id=CLICK_ID&goal=lead&amount=AMOUNT"
            "&order_id=ORDER_ID&token=YOUR_POSTBACK_TOKEN",
        ),
        (
            "Image pixel, on the thank-you page",
            f'<img src="http://testserver/pixel?offer_id={pk}&amp;goal=lead&amp;amount=AMOUNT'
            '&amp;order_id=ORDER_ID" width="1" height="1" alt="">',
        ),
        (
            "JavaScript tag, on the thank-you page",
            f'<script src="http://testserver/pixel.js?offer_id={pk}&amp;goal=lead'
            '&amp;amount=AMOUNT&amp;order_id=ORDER_ID" async></script>',
        ),
        ("Goals (goal=…)", "lead, sale"),
    ]


def test_an_offer_without_pixels_shows_the_postback_only(admin_world: AdminWorld):
    code = offer_tracking_code(offer=admin_world.offer_y)
    assert [label for label, _ in code] == [
        "Server postback, from the advertiser's server (recommended)"
    ]


def test_the_advertiser_user_sees_its_offers_code_escaped_and_without_secrets(
    admin_world: AdminWorld,
):
    w = admin_world
    w.offer_x.pixel_methods = ["iframe"]
    w.offer_x.save()
    page = w.x_client.get(reverse("admin:offers_offer_change", args=[w.offer_x.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Conversion tracking code" in html
    assert f"/pixel/iframe?offer_id={w.offer_x.pk}" in html
    assert "&lt;iframe src=" in html and "<iframe src=" not in html  # shown, not rendered
    assert "YOUR_POSTBACK_TOKEN" in html
    assert w.adv_x.postback_token_hash not in html
    assert factories.ADVERTISER_TOKEN not in html


def test_the_add_page_asks_to_save_first(admin_world: AdminWorld):
    page = admin_world.super_client.get(reverse("admin:offers_offer_add"))
    assert "Save the offer to see its postback URL and pixels." in page.content.decode()


def test_no_pixel_code_for_an_advertiser_whose_pixels_are_refused(admin_world: AdminWorld):
    """Its pixels would be refused (signature_required, ip_not_allowed): the page says why
    instead of handing out code that records nothing."""
    w = admin_world
    w.offer_x.pixel_methods = ["pixel"]
    w.offer_x.save()
    w.adv_x.ip_allowlist = ["203.0.113.0/24"]
    w.adv_x.save()
    factories.GoalFactory(offer=w.offer_x, code="sale", is_default=False)
    code = offer_tracking_code(offer=w.offer_x)
    assert code[1][0] == "Pixels"
    assert code[-1] == ("Goals (goal=…)", "lead, sale")  # the postback needs them all the same
    assert code[1][1].startswith("None: the advertiser requires signed postbacks or has an IP")
    assert not any("/pixel?" in text for _, text in code)
