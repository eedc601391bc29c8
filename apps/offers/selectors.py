from __future__ import annotations

import html
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.urls import reverse

from apps.common.text import digits_int
from apps.offers.models import (
    AccessStatus,
    CustomPayout,
    Goal,
    Offer,
    OfferAccess,
    OfferStatus,
    OfferVisibility,
    PixelMethod,
)
from apps.partners.models import Affiliate, AffiliateStatus
from apps.tracking import catalog


def _runnable_filter(affiliate_id: int) -> Q:
    """Offers an affiliate may send traffic to: public ones unless rejected, others if approved."""
    approved = OfferAccess.objects.filter(
        offer=OuterRef("pk"), affiliate_id=affiliate_id, status=AccessStatus.APPROVED
    )
    rejected = OfferAccess.objects.filter(
        offer=OuterRef("pk"), affiliate_id=affiliate_id, status=AccessStatus.REJECTED
    )
    return (Q(visibility=OfferVisibility.PUBLIC) & ~Exists(rejected)) | Exists(approved)


def offer_list_for_affiliate(*, affiliate: Affiliate) -> QuerySet[Offer]:
    """Active offers this affiliate may run, with their goals; none unless the affiliate is active
    (the same rule as offer_runnable_by, so no link is handed out that /click would refuse)."""
    if affiliate.status != AffiliateStatus.ACTIVE:
        return Offer.objects.none()
    return (
        Offer.objects.filter(status=OfferStatus.ACTIVE)
        .filter(_runnable_filter(affiliate.pk))
        .prefetch_related("goals")
        .order_by("id")
    )


def offer_runnable_by(*, offer: Offer, affiliate: Affiliate) -> bool:
    if offer.status != OfferStatus.ACTIVE or affiliate.status != AffiliateStatus.ACTIVE:
        return False
    return Offer.objects.filter(pk=offer.pk).filter(_runnable_filter(affiliate.pk)).exists()


def offer_list_for_advertiser(*, advertiser_id: int) -> QuerySet[Offer]:
    return Offer.objects.filter(advertiser_id=advertiser_id).prefetch_related("goals")


def _offer_goals(offer_id: int) -> tuple[Goal, ...]:
    return tuple(Goal.objects.filter(offer_id=offer_id).order_by("pk"))


def goal_for_code(*, offer: Offer, code: str | None, by_id: bool = False) -> Goal | None:
    """The goal a postback names by its code, or the offer's default goal when it names none
    (from the catalog: shared read-only instances). `by_id`: the name it came under may carry
    the goal's id instead (HasOffers' goal_id=12, Everflow's adv_event_id=12), tried when no
    goal of the offer has that code."""
    goals: tuple[Goal, ...] = catalog.cached("offer-goals", offer.pk, _offer_goals)
    if not code:
        return next((goal for goal in goals if goal.is_default), None)
    by_code = next((goal for goal in goals if goal.code == code), None)
    goal_pk = digits_int(code) if by_id else None
    if by_code is not None or goal_pk is None:
        return by_code
    return next((goal for goal in goals if goal.pk == goal_pk), None)


def tracking_link(*, offer_id: int, affiliate_id: int) -> str:
    base = settings.TRACKING_BASE_URL.rstrip("/")
    return f"{base}/click?{urlencode({'offer_id': offer_id, 'aff_id': affiliate_id})}"


# Each kind of pixel's URL name (config/urls.py) and how a page embeds it ({url}: HTML-escaped).
_PIXEL_SNIPPETS = {
    "pixel": ("pixel", '<img src="{url}" width="1" height="1" alt="">'),
    "iframe": ("pixel-iframe", '<iframe src="{url}" width="1" height="1" hidden></iframe>'),
    "js": ("pixel-js", '<script src="{url}" async></script>'),
}
_POSTBACK_LABEL = "Server postback, from the advertiser's server (recommended)"


def offer_tracking_code(*, offer: Offer) -> list[tuple[str, str]]:
    """What the advertiser puts on its side to report this offer's conversions, as (label,
    code): the server postback, then each pixel the offer takes. CLICK_ID is the click id our
    redirect gave its landing page ({click_id} in the destination URL); the other capitals are
    the advertiser's own values. No secret is in these: the token is a placeholder, and pixels
    take none (apps.conversions.pixel)."""
    base = settings.TRACKING_BASE_URL.rstrip("/")
    goals = list(offer.goals.order_by("-is_default", "pk").values_list("code", flat=True))
    sale = {"goal": goals[0] if goals else "GOAL", "amount": "AMOUNT", "order_id": "ORDER_ID"}
    postback = {"click_id": "CLICK_ID", **sale, "token": "YOUR_POSTBACK_TOKEN"}
    code = [(_POSTBACK_LABEL, f"{base}/postback?{urlencode(postback)}")]
    advertiser = offer.advertiser
    if offer.pixel_methods and (advertiser.require_signature or advertiser.ip_allowlist):
        code.append(
            (
                "Pixels",
                "None: the advertiser requires signed postbacks or has an IP allowlist, "
                "which a browser cannot meet.",
            )
        )
    else:
        for method in offer.pixel_methods:
            if method not in _PIXEL_SNIPPETS:
                continue
            url_name, snippet = _PIXEL_SNIPPETS[method]
            url = f"{base}{reverse(url_name)}?{urlencode({'offer_id': offer.pk, **sale})}"
            label = f"{PixelMethod(method).label}, on the thank-you page"
            code.append((label, snippet.format(url=html.escape(url))))
    if len(goals) > 1:
        code.append(("Goals (goal=…)", ", ".join(goals)))
    return code


def _custom_payouts(key: tuple[int, int]) -> tuple[CustomPayout, ...]:
    offer_id, affiliate_id = key
    return tuple(CustomPayout.objects.filter(offer_id=offer_id, affiliate_id=affiliate_id))


def custom_payout_for(
    *, offer_id: int, affiliate_id: int, goal_id: int, country: str
) -> CustomPayout | None:
    """The affiliate's own payout for this conversion, the most specific that applies: goal and
    country, then goal, then country, then the whole offer."""
    rows: tuple[CustomPayout, ...] = catalog.cached(
        "custom-payouts", (offer_id, affiliate_id), _custom_payouts
    )
    candidates = [
        row for row in rows if row.goal_id in (goal_id, None) and row.country in (country, "")
    ]
    return max(
        candidates,
        key=lambda row: (row.goal_id is not None, row.country != ""),
        default=None,
    )
