"""Admin actions and the ledger's append-only rule in the admin."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse

from apps.accounts.models import ApiKey
from apps.accounts.services import api_key_create, secret_hash
from apps.advertisers.models import Advertiser
from apps.commissions.models import EntryKind, LedgerEntry
from apps.common.safe_http import URL_REFUSED
from apps.offers.models import AccessStatus, Offer, OfferAccess, OfferStatus
from tests import factories

from .conftest import AdminWorld


def _action(client, model_url: str, action: str, ids: list[int]):
    return client.post(reverse(model_url), {"action": action, "_selected_action": ids}, follow=True)


def test_pause_offers(admin_world: AdminWorld):
    w = admin_world
    w.offer_x2.status = OfferStatus.ARCHIVED
    w.offer_x2.save(update_fields=["status"])
    response = _action(
        w.super_client,
        "admin:offers_offer_changelist",
        "pause_offers",
        [w.offer_x.pk, w.offer_x2.pk],
    )
    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == ["Paused 1 offer(s)."]
    statuses = dict(
        Offer.objects.filter(pk__in=[w.offer_x.pk, w.offer_x2.pk, w.offer_y.pk]).values_list(
            "pk", "status"
        )
    )
    assert statuses == {
        w.offer_x.pk: OfferStatus.PAUSED,
        w.offer_x2.pk: OfferStatus.ARCHIVED,  # only active offers are paused
        w.offer_y.pk: OfferStatus.ACTIVE,
    }


@pytest.mark.parametrize(
    ("action", "status", "message"),
    [
        ("approve", AccessStatus.APPROVED, "Approved 2 request(s)."),
        ("reject", AccessStatus.REJECTED, "Rejected 2 request(s)."),
    ],
)
def test_offer_access_actions(admin_world: AdminWorld, action, status, message):
    w = admin_world
    a1 = factories.OfferAccessFactory(offer=w.offer_x, status=AccessStatus.PENDING)
    a2 = factories.OfferAccessFactory(offer=w.offer_y, status=AccessStatus.PENDING)
    untouched = factories.OfferAccessFactory(offer=w.offer_x2, status=AccessStatus.PENDING)
    response = _action(
        w.super_client, "admin:offers_offeraccess_changelist", action, [a1.pk, a2.pk]
    )
    assert [str(m) for m in response.context["messages"]] == [message]
    assert dict(OfferAccess.objects.values_list("pk", "status")) == {
        a1.pk: status,
        a2.pk: status,
        untouched.pk: AccessStatus.PENDING,
    }


def test_rotate_postback_token_shows_new_token_once(admin_world: AdminWorld):
    w = admin_world
    before = Advertiser.objects.get(pk=w.adv_x.pk).postback_token_hash
    response = _action(
        w.super_client,
        "admin:advertisers_advertiser_changelist",
        "rotate_postback_token",
        [w.adv_x.pk],
    )
    [message] = [str(m) for m in response.context["messages"]]
    token = message.split("new postback token ")[1].split(" ")[0]
    adv = Advertiser.objects.get(pk=w.adv_x.pk)
    assert adv.postback_token_hash == secret_hash(token) != before
    assert adv.postback_token_prefix == token[:6]
    assert Advertiser.objects.get(pk=w.adv_y.pk).postback_token_hash == w.adv_y.postback_token_hash


def test_api_key_revoke_action_and_owner_is_read_only(admin_world: AdminWorld):
    w = admin_world
    key, _plain = api_key_create(user=w.x_user, name="ci")
    other, _ = api_key_create(user=w.x_user, name="other")
    response = _action(w.super_client, "admin:accounts_apikey_changelist", "revoke", [key.pk])
    assert [str(m) for m in response.context["messages"]] == ["Revoked 1 key(s)."]
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert ApiKey.objects.get(pk=other.pk).revoked_at is None

    url = reverse("admin:accounts_apikey_change", args=[other.pk])
    form = w.super_client.get(url).context["adminform"].form
    assert "user" not in form.fields
    staff_user = factories.UserFactory(is_staff=True)
    w.super_client.post(url, {"name": "renamed", "user": staff_user.pk})
    other.refresh_from_db()
    assert (other.name, other.user_id) == ("renamed", w.x_user.pk)


# --- Ledger: append-only, also in the admin -----------------------------------------------------


@pytest.fixture
def entry(admin_world: AdminWorld) -> LedgerEntry:
    return LedgerEntry.objects.create(
        affiliate=admin_world.conv_x.affiliate,
        kind=EntryKind.ADJUSTMENT,
        amount=Decimal("5.00"),
        currency="USD",
        memo="bonus",
    )


def test_ledger_has_no_change_or_delete_permission_even_for_superuser(admin_world, entry):
    root = admin_world.super_client.get(reverse("admin:index")).wsgi_request.user
    assert root.is_superuser
    request = RequestFactory().get("/")
    request.user = root
    ledger_admin = admin.site._registry[LedgerEntry]
    assert ledger_admin.has_change_permission(request) is False
    assert ledger_admin.has_change_permission(request, entry) is False
    assert ledger_admin.has_delete_permission(request) is False
    assert ledger_admin.has_delete_permission(request, entry) is False
    assert ledger_admin.has_view_permission(request, entry) is True
    assert "delete_selected" not in ledger_admin.get_actions(request)


def test_ledger_change_and_delete_are_refused(admin_world, entry):
    client = admin_world.super_client
    url = reverse("admin:commissions_ledgerentry_change", args=[entry.pk])
    assert client.get(url).status_code == 200  # view only
    response = client.post(
        url,
        {
            "affiliate": entry.affiliate_id,
            "kind": "adjustment",
            "amount": "500.00",
            "currency": "USD",
            "memo": "edited",
        },
    )
    assert response.status_code == 403
    delete = reverse("admin:commissions_ledgerentry_delete", args=[entry.pk])
    assert client.get(delete).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    response = client.post(
        reverse("admin:commissions_ledgerentry_changelist"),
        {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"},
    )
    assert LedgerEntry.objects.filter(pk=entry.pk, amount=Decimal("5.00"), memo="bonus").exists()


def test_ledger_manual_adjustment_can_be_added(admin_world):
    w = admin_world
    response = w.super_client.post(
        reverse("admin:commissions_ledgerentry_add"),
        {
            "affiliate": w.conv_x.affiliate_id,
            "kind": "adjustment",
            "amount": "-3.25",
            "currency": "USD",
            "memo": "chargeback fee",
        },
    )
    assert response.status_code == 302
    added = LedgerEntry.objects.get(memo="chargeback fee")
    assert (added.amount, added.kind, added.affiliate_id) == (
        Decimal("-3.25"),
        "adjustment",
        w.conv_x.affiliate_id,
    )


def test_ledger_second_commission_for_a_conversion_is_a_form_error(admin_world):
    w = admin_world
    LedgerEntry.objects.create(
        affiliate=w.conv_x.affiliate,
        kind=EntryKind.COMMISSION,
        amount=Decimal("2.50"),
        currency="USD",
        conversion=w.conv_x,
    )
    response = w.super_client.post(
        reverse("admin:commissions_ledgerentry_add"),
        {
            "affiliate": w.conv_x.affiliate_id,
            "kind": "commission",
            "amount": "2.50",
            "currency": "USD",
            "conversion": w.conv_x.pk,
            "memo": "dup",
        },
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert LedgerEntry.objects.filter(conversion=w.conv_x).count() == 1


# --- Affiliate postback URLs in the admin: the same SSRF rule as the API -------------------------


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://tracker.example.net/pb?c={click_id}", True),
        ("http://127.0.0.1/pb", False),
        ("http://169.254.169.254/latest/", False),
        ("http://u:p@tracker.example.net/", False),
        ("https://tracker.example.net:8443/pb", True),
        ("http://tracker.example.net:587/pb", False),
    ],
)
def test_admin_postback_url_rule(admin_world: AdminWorld, url: str, ok: bool):
    from apps.partners.models import AffiliatePostback

    w = admin_world
    response = w.super_client.post(
        reverse("admin:partners_affiliatepostback_add"),
        {"affiliate": w.conv_x.affiliate_id, "url": url, "is_active": "on"},
    )
    assert response.status_code == (302 if ok else 200)
    assert AffiliatePostback.objects.filter(url=url).exists() is ok
    if not ok:
        assert response.context["adminform"].form.errors["url"] == [URL_REFUSED]
