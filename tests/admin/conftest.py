from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.accounts.services import advertiser_user_create
from apps.advertisers.models import Advertiser
from apps.conversions.models import Conversion
from apps.offers.models import Goal, Offer
from tests import factories


def superuser() -> User:
    # Not UserFactory: it sets the password without saving it, and a session whose password hash
    # does not match the stored one is logged out on the next request.
    return User.objects.create_superuser(username="root", password="root-password-123")


def admin_form_data(response) -> dict[str, object]:
    """The POST body an admin add/change page would send unchanged: every field's current value
    and every inline's management form. Tests then override what they change, so they keep
    working as models grow fields."""
    data: dict[str, object] = {}

    def add(form) -> None:
        for name, field in form.fields.items():
            value = field.prepare_value(form[name].value())
            if value is None:
                continue
            if isinstance(value, bool):
                if value:
                    data[form.add_prefix(name)] = "on"
                continue
            if isinstance(value, list | tuple):
                data[form.add_prefix(name)] = [str(v) for v in value]
                continue
            data[form.add_prefix(name)] = value

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        add(formset.management_form)
        for form in formset.initial_forms:
            add(form)
    return data


@dataclass
class AdminWorld:
    adv_x: Advertiser
    adv_y: Advertiser
    offer_x: Offer
    offer_x2: Offer
    offer_y: Offer
    goal_x: Goal
    goal_y: Goal
    conv_x: Conversion
    conv_y: Conversion
    x_user: User
    x_client: Client
    super_client: Client


@pytest.fixture
def admin_world(db) -> AdminWorld:
    adv_x = factories.AdvertiserFactory(name="Advertiser X")
    adv_y = factories.AdvertiserFactory(name="Advertiser Y")
    offer_x = factories.OfferFactory(advertiser=adv_x, name="X offer one")
    offer_x2 = factories.OfferFactory(advertiser=adv_x, name="X offer two")
    offer_y = factories.OfferFactory(advertiser=adv_y, name="Y secret offer")
    goal_x = factories.GoalFactory(offer=offer_x, code="lead")
    goal_y = factories.GoalFactory(offer=offer_y, code="lead")
    affiliate = factories.AffiliateFactory(name="Affiliate Secret Name")
    conv_x = factories.ConversionFactory(
        click=factories.ClickFactory(offer=offer_x, affiliate=affiliate), goal=goal_x
    )
    conv_y = factories.ConversionFactory(
        click=factories.ClickFactory(offer=offer_y, affiliate=affiliate), goal=goal_y
    )
    x_user = advertiser_user_create(
        username="x-admin", password="x-password-123", advertiser_id=adv_x.pk
    )
    x_client = Client()
    x_client.force_login(x_user)
    super_client = Client()
    super_client.force_login(superuser())
    return AdminWorld(
        adv_x=adv_x,
        adv_y=adv_y,
        offer_x=offer_x,
        offer_x2=offer_x2,
        offer_y=offer_y,
        goal_x=goal_x,
        goal_y=goal_y,
        conv_x=conv_x,
        conv_y=conv_y,
        x_user=x_user,
        x_client=x_client,
        super_client=super_client,
    )
