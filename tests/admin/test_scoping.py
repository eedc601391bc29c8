"""An advertiser user in the shared admin sees and edits only its own advertiser's objects."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.offers.models import Goal, Offer, OfferStatus

from .conftest import AdminWorld, admin_form_data


def _changelist_ids(client, model: str) -> list[int]:
    app = {"offer": "offers", "goal": "offers", "conversion": "conversions"}[model]
    response = client.get(reverse(f"admin:{app}_{model}_changelist"))
    assert response.status_code == 200
    return sorted(obj.pk for obj in response.context["cl"].result_list)


def _offer_form(client, offer_name: str, **extra: object) -> dict[str, object]:
    data = admin_form_data(client.get(reverse("admin:offers_offer_add")))
    data.update(
        {
            "name": offer_name,
            "visibility": "public",
            "destination_url": "https://shop.example.com/?c={click_id}",
            **extra,
        }
    )
    return data


def test_superuser_sees_everything(admin_world: AdminWorld):
    w = admin_world
    assert _changelist_ids(w.super_client, "offer") == sorted(
        [w.offer_x.pk, w.offer_x2.pk, w.offer_y.pk]
    )
    assert _changelist_ids(w.super_client, "goal") == sorted([w.goal_x.pk, w.goal_y.pk])
    assert _changelist_ids(w.super_client, "conversion") == sorted([w.conv_x.pk, w.conv_y.pk])


def test_advertiser_user_sees_only_its_own(admin_world: AdminWorld):
    w = admin_world
    assert _changelist_ids(w.x_client, "offer") == sorted([w.offer_x.pk, w.offer_x2.pk])
    assert _changelist_ids(w.x_client, "goal") == [w.goal_x.pk]
    assert _changelist_ids(w.x_client, "conversion") == [w.conv_x.pk]


@pytest.mark.parametrize(
    "url",
    [
        "admin:offers_offer_changelist",
        "admin:offers_goal_changelist",
        "admin:conversions_conversion_changelist",
        "admin:offers_offer_add",
        "admin:offers_goal_add",
        "admin:index",
    ],
)
def test_other_advertisers_names_never_appear(admin_world: AdminWorld, url: str):
    response = admin_world.x_client.get(reverse(url))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Y secret offer" not in body
    assert "Advertiser Y" not in body


def test_conversion_pages_hide_payout_and_affiliate_name(admin_world: AdminWorld):
    w = admin_world
    changelist = w.x_client.get(reverse("admin:conversions_conversion_changelist"))
    assert "column-payout" not in changelist.content.decode()
    assert "Affiliate Secret Name" not in changelist.content.decode()
    change = w.x_client.get(reverse("admin:conversions_conversion_change", args=[w.conv_x.pk]))
    assert change.status_code == 200
    body = change.content.decode()
    assert "field-payout" not in body
    assert "Affiliate Secret Name" not in body
    assert "field-revenue" in body
    # Staff see both.
    staff = w.super_client.get(reverse("admin:conversions_conversion_change", args=[w.conv_x.pk]))
    assert "field-payout" in staff.content.decode()


def _offer_filter_choices(client) -> set[str]:
    response = client.get(reverse("admin:conversions_conversion_changelist"))
    changelist = response.context["cl"]
    return {
        choice["display"]
        for spec in changelist.filter_specs
        if getattr(spec, "field_path", None) == "offer"
        for choice in spec.choices(changelist)
    }


def test_conversion_filter_only_lists_own_offers(admin_world: AdminWorld):
    from tests import factories

    w = admin_world
    factories.ConversionFactory(click=factories.ClickFactory(offer=w.offer_x2), goal__code="x2")
    assert _offer_filter_choices(w.x_client) == {"All", str(w.offer_x), str(w.offer_x2)}
    assert _offer_filter_choices(w.super_client) == {
        "All",
        str(w.offer_x),
        str(w.offer_x2),
        str(w.offer_y),
    }


@pytest.mark.parametrize(
    ("url_name", "attr"),
    [
        ("admin:offers_offer_change", "offer_y"),
        ("admin:offers_offer_delete", "offer_y"),
        ("admin:offers_offer_history", "offer_y"),
        ("admin:offers_goal_change", "goal_y"),
        ("admin:offers_goal_delete", "goal_y"),
        ("admin:conversions_conversion_change", "conv_y"),
        ("admin:conversions_conversion_history", "conv_y"),
    ],
)
def test_other_advertisers_object_pages_are_refused(admin_world: AdminWorld, url_name, attr):
    obj = getattr(admin_world, attr)
    response = admin_world.x_client.get(reverse(url_name, args=[obj.pk]))
    assert response.status_code in (302, 403, 404)
    assert str(obj) not in response.content.decode()


def test_posting_a_change_to_another_advertisers_offer_changes_nothing(admin_world: AdminWorld):
    w = admin_world
    response = w.x_client.post(
        reverse("admin:offers_offer_change", args=[w.offer_y.pk]),
        _offer_form(w.x_client, "Hijacked", status="paused"),
    )
    assert response.status_code in (302, 403, 404)
    w.offer_y.refresh_from_db()
    assert (w.offer_y.name, w.offer_y.status, w.offer_y.advertiser_id) == (
        "Y secret offer",
        OfferStatus.ACTIVE,
        w.adv_y.pk,
    )


def test_posting_a_delete_of_another_advertisers_goal_deletes_nothing(admin_world: AdminWorld):
    w = admin_world
    response = w.x_client.post(
        reverse("admin:offers_goal_delete", args=[w.goal_y.pk]), {"post": "yes"}
    )
    assert response.status_code in (302, 403, 404)
    assert Goal.objects.filter(pk=w.goal_y.pk).exists()


def test_advertiser_user_edits_own_offer(admin_world: AdminWorld):
    w = admin_world
    url = reverse("admin:offers_offer_change", args=[w.offer_x.pk])
    data = admin_form_data(w.x_client.get(url))
    data.update({"name": "X renamed", "goals-0-payout": "3.00"})
    response = w.x_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    w.offer_x.refresh_from_db()
    w.goal_x.refresh_from_db()
    assert (w.offer_x.name, w.offer_x.advertiser_id) == ("X renamed", w.adv_x.pk)
    assert str(w.goal_x.payout) == "3.0000"


def test_advertiser_user_ticks_the_pixels_and_targeting_of_own_offer(admin_world: AdminWorld):
    """Choice lists (pixels, devices, OS) are checkboxes: a value outside the choices is refused
    with the form, not saved."""
    w = admin_world
    url = reverse("admin:offers_offer_change", args=[w.offer_x.pk])
    page = w.x_client.get(url)
    assert b'type="checkbox" name="pixel_methods" value="iframe"' in page.content
    data = admin_form_data(page)
    data.update({"pixel_methods": ["pixel", "js"], "allowed_devices": ["mobile", "tablet"]})
    assert w.x_client.post(url, data).status_code == 302
    w.offer_x.refresh_from_db()
    assert (w.offer_x.pixel_methods, w.offer_x.allowed_devices) == (
        ["pixel", "js"],
        ["mobile", "tablet"],
    )

    data["pixel_methods"] = ["pixel", "beacon"]
    response = w.x_client.post(url, data)
    assert response.status_code == 200
    assert "pixel_methods" in response.context["adminform"].form.errors
    w.offer_x.refresh_from_db()
    assert w.offer_x.pixel_methods == ["pixel", "js"]


def test_adding_an_offer_forces_own_advertiser(admin_world: AdminWorld):
    w = admin_world
    response = w.x_client.post(
        reverse("admin:offers_offer_add"),
        _offer_form(w.x_client, "New X offer", advertiser=w.adv_y.pk),
    )
    assert response.status_code == 302
    created = Offer.objects.get(name="New X offer")
    assert created.advertiser_id == w.adv_x.pk


def test_advertiser_field_is_not_editable_for_advertiser_user(admin_world: AdminWorld):
    response = admin_world.x_client.get(reverse("admin:offers_offer_add"))
    assert "advertiser" not in response.context["adminform"].form.fields
    staff = admin_world.super_client.get(reverse("admin:offers_offer_add"))
    assert "advertiser" in staff.context["adminform"].form.fields


def test_goal_form_lists_only_own_offers(admin_world: AdminWorld):
    w = admin_world
    response = w.x_client.get(reverse("admin:offers_goal_add"))
    choices = response.context["adminform"].form.fields["offer"].queryset
    assert sorted(choices.values_list("pk", flat=True)) == sorted([w.offer_x.pk, w.offer_x2.pk])


def test_goal_cannot_be_added_to_another_advertisers_offer(admin_world: AdminWorld):
    w = admin_world
    response = w.x_client.post(
        reverse("admin:offers_goal_add"),
        {
            "offer": w.offer_y.pk,
            "code": "sneaky",
            "name": "Sneaky",
            "payout_type": "fixed",
            "revenue_type": "fixed",
            "payout_percent": "0",
            "revenue_percent": "0",
            "payout": "1",
            "revenue": "1",
            "default_status": "approved",
        },
    )
    assert response.status_code == 200  # the form comes back with an error
    assert "offer" in response.context["adminform"].form.errors
    assert not Goal.objects.filter(code="sneaky").exists()


def test_goal_can_be_added_to_own_offer(admin_world: AdminWorld):
    w = admin_world
    response = w.x_client.post(
        reverse("admin:offers_goal_add"),
        {
            "offer": w.offer_x2.pk,
            "code": "sale",
            "name": "Sale",
            "payout_type": "percent",
            "revenue_type": "percent",
            "payout_percent": "0",
            "revenue_percent": "0",
            "payout": "10",
            "revenue": "15",
            "default_status": "pending",
        },
    )
    assert response.status_code == 302
    assert Goal.objects.get(code="sale").offer_id == w.offer_x2.pk


def test_moving_own_goal_to_another_advertisers_offer_is_refused(admin_world: AdminWorld):
    w = admin_world
    response = w.x_client.post(
        reverse("admin:offers_goal_change", args=[w.goal_x.pk]),
        {
            "offer": w.offer_y.pk,
            "code": "lead",
            "name": "Lead",
            "payout_type": "fixed",
            "revenue_type": "fixed",
            "payout_percent": "0",
            "revenue_percent": "0",
            "payout": "1",
            "revenue": "1",
            "default_status": "approved",
            "is_default": "on",
        },
    )
    assert response.status_code == 200
    w.goal_x.refresh_from_db()
    assert w.goal_x.offer_id == w.offer_x.pk


def test_pause_action_on_another_advertisers_offer_does_nothing(admin_world: AdminWorld):
    w = admin_world
    response = w.x_client.post(
        reverse("admin:offers_offer_changelist"),
        {"action": "pause_offers", "_selected_action": [w.offer_y.pk, w.offer_x.pk]},
    )
    assert response.status_code == 302
    w.offer_y.refresh_from_db()
    w.offer_x.refresh_from_db()
    assert (w.offer_x.status, w.offer_y.status) == (OfferStatus.PAUSED, OfferStatus.ACTIVE)


def test_conversions_are_read_only_for_advertiser_user(admin_world: AdminWorld):
    w = admin_world
    response = w.x_client.post(
        reverse("admin:conversions_conversion_change", args=[w.conv_x.pk]), {"status": "rejected"}
    )
    assert response.status_code == 403
    w.conv_x.refresh_from_db()
    assert w.conv_x.status == "approved"


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:partners_affiliate_changelist",
        "admin:partners_affiliatepostback_changelist",
        "admin:tracking_click_changelist",
        "admin:commissions_ledgerentry_changelist",
        "admin:conversions_outboundpostbackdelivery_changelist",
        "admin:offers_offeraccess_changelist",
        "admin:accounts_user_changelist",
        "admin:accounts_apikey_changelist",
        "admin:auth_group_changelist",
        "admin:advertisers_advertiser_add",
        "admin:partners_affiliate_add",
    ],
)
def test_advertiser_user_cannot_reach_network_admin(admin_world: AdminWorld, url_name: str):
    response = admin_world.x_client.get(reverse(url_name))
    assert response.status_code == 403


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:advertisers_advertiser_change",
        "admin:advertisers_advertiser_history",
        "admin:advertisers_advertiser_delete",
    ],
)
def test_advertiser_user_cannot_open_another_advertiser(admin_world: AdminWorld, url_name: str):
    w = admin_world
    response = w.x_client.get(reverse(url_name, args=[w.adv_y.pk]))
    assert response.status_code in (302, 403, 404)
    assert w.adv_y.name not in response.content.decode()


def test_advertiser_user_sees_its_own_advertiser_only_read_only(admin_world: AdminWorld):
    """Its own advertiser is there so that it can rotate its signing secret; nothing else."""
    w = admin_world
    changelist = w.x_client.get(reverse("admin:advertisers_advertiser_changelist"))
    assert changelist.status_code == 200
    assert [a.pk for a in changelist.context["cl"].result_list] == [w.adv_x.pk]
    assert w.adv_y.name not in changelist.content.decode()
    page = w.x_client.get(reverse("admin:advertisers_advertiser_change", args=[w.adv_x.pk]))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    delete = w.x_client.get(reverse("admin:advertisers_advertiser_delete", args=[w.adv_x.pk]))
    assert delete.status_code == 403


def test_advertiser_user_index_lists_only_its_models(admin_world: AdminWorld):
    response = admin_world.x_client.get(reverse("admin:index"))
    models = {
        model["object_name"] for app in response.context["app_list"] for model in app["models"]
    }
    assert models == {
        "Offer",
        "Goal",
        "Conversion",
        "InboundPostbackLog",
        "ReconciliationRun",
        "Advertiser",  # its own, to rotate its signing secret
    }


def test_non_staff_user_is_sent_to_login(admin_world: AdminWorld, client):
    from tests import factories

    affiliate_user = factories.UserFactory(affiliate=factories.AffiliateFactory())
    client.force_login(affiliate_user)
    response = client.get(reverse("admin:offers_offer_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


# --- Fallback offer and caps (fields that point at other offers, goals and affiliates) -----------


def test_fallback_offer_choices_are_own_offers(admin_world: AdminWorld):
    w = admin_world
    response = w.x_client.get(reverse("admin:offers_offer_change", args=[w.offer_x.pk]))
    choices = response.context["adminform"].form.fields["fallback_offer"].queryset
    assert sorted(choices.values_list("pk", flat=True)) == sorted([w.offer_x.pk, w.offer_x2.pk])


def test_fallback_offer_of_another_advertiser_is_refused(admin_world: AdminWorld):
    w = admin_world
    url = reverse("admin:offers_offer_change", args=[w.offer_x.pk])
    data = admin_form_data(w.x_client.get(url))
    data["fallback_offer"] = w.offer_y.pk
    response = w.x_client.post(url, data)
    assert response.status_code == 200
    assert "fallback_offer" in response.context["adminform"].form.errors
    w.offer_x.refresh_from_db()
    assert w.offer_x.fallback_offer_id is None


def _cap_formset(response):
    return next(
        inline.formset
        for inline in response.context["inline_admin_formsets"]
        if inline.formset.model._meta.model_name == "offercap"
    )


def test_cap_goal_choices_are_the_offers_own_goals(admin_world: AdminWorld):
    from tests import factories

    w = admin_world
    other_goal_same_advertiser = factories.GoalFactory(offer=w.offer_x2, code="other")
    for client in (w.x_client, w.super_client):
        response = client.get(reverse("admin:offers_offer_change", args=[w.offer_x.pk]))
        goal_field = _cap_formset(response).empty_form.fields["goal"]
        assert list(goal_field.queryset.values_list("pk", flat=True)) == [w.goal_x.pk]
    assert other_goal_same_advertiser.pk not in goal_field.queryset.values_list("pk", flat=True)


def test_caps_show_affiliate_id_not_name_to_advertisers(admin_world: AdminWorld):
    from apps.offers.models import OfferCap

    w = admin_world
    affiliate = w.conv_x.affiliate
    OfferCap.objects.create(
        offer=w.offer_x, affiliate=affiliate, metric="clicks", period="day", limit=100
    )
    url = reverse("admin:offers_offer_change", args=[w.offer_x.pk])
    response = w.x_client.get(url)
    assert "affiliate" not in _cap_formset(response).empty_form.fields
    body = response.content.decode()
    assert "Affiliate Secret Name" not in body
    assert re.search(rf'class="field-affiliate_ref">\s*<p>{affiliate.pk}</p>', body)
    staff = w.super_client.get(url)
    assert "affiliate" in _cap_formset(staff).empty_form.fields


def test_advertiser_user_adds_a_cap_for_all_affiliates(admin_world: AdminWorld):
    from apps.offers.models import OfferCap

    w = admin_world
    url = reverse("admin:offers_offer_change", args=[w.offer_x.pk])
    data = admin_form_data(w.x_client.get(url))
    prefix = _cap_formset(w.x_client.get(url)).prefix
    data.update(
        {
            f"{prefix}-TOTAL_FORMS": 1,
            f"{prefix}-0-metric": "conversions",
            f"{prefix}-0-period": "day",
            f"{prefix}-0-limit": 5,
            f"{prefix}-0-goal": w.goal_x.pk,
            f"{prefix}-0-affiliate": w.conv_y.affiliate_id,  # not a field for advertisers
        }
    )
    response = w.x_client.post(url, data)
    assert response.status_code == 302
    cap = OfferCap.objects.get(offer=w.offer_x)
    assert (cap.metric, cap.limit, cap.goal_id, cap.affiliate_id) == (
        "conversions",
        5,
        w.goal_x.pk,
        None,
    )


@pytest.mark.parametrize(
    "query",
    [
        "payout__gte=0",
        "payout=2.50",
        "payout__lt=100",
        "affiliate__name__startswith=Aff",
        "affiliate__name=Affiliate Secret Name",
        "affiliate=1",
        "affiliate_id__in=1,2",
        "offer__advertiser__name=Advertiser Y",
    ],
)
def test_advertiser_cannot_filter_conversions_by_hidden_fields(admin_world: AdminWorld, query):
    url = reverse("admin:conversions_conversion_changelist") + "?" + query
    response = admin_world.x_client.get(url)
    assert response.status_code in (302, 400)  # refused lookup (or ?e=1 redirect), never a result
    staff = admin_world.super_client.get(reverse("admin:conversions_conversion_changelist"))
    assert staff.status_code == 200


def test_advertiser_can_still_filter_conversions_by_status(admin_world: AdminWorld):
    url = reverse("admin:conversions_conversion_changelist") + "?status__exact=approved"
    response = admin_world.x_client.get(url)
    assert response.status_code == 200
    assert [c.pk for c in response.context["cl"].result_list] == [admin_world.conv_x.pk]
