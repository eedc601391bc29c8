"""Object-level authorization, endpoint by endpoint: each caller sees its own rows and no others."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from apps.partners.models import AffiliatePostback

from .conftest import World


def _ids(response, key: str = "id") -> list[int]:
    assert response.status_code == 200, response.content
    return [row[key] for row in response.json()["results"]]


def _offer_ids(world: World, *keys: str) -> list[int]:
    return sorted(world.offers[k].pk for k in keys)


# --- Affiliate ---------------------------------------------------------------------------------


def test_affiliate_offers_lists_only_runnable_offers(world):
    assert _ids(world.client_a.get("/api/v1/affiliate/offers/")) == _offer_ids(
        world, "x_public", "x_approved", "x_private_approved", "y_public"
    )
    assert _ids(world.client_b.get("/api/v1/affiliate/offers/")) == _offer_ids(
        world, "x_public", "x_public_rejected", "y_public", "y_private_b"
    )


def test_affiliate_offer_tracking_link_carries_own_ids(world):
    rows = world.client_a.get("/api/v1/affiliate/offers/").json()["results"]
    assert rows
    for row in rows:
        link = urlsplit(row["tracking_link"])
        assert (link.scheme, link.netloc, link.path) == ("http", "testserver", "/click")
        assert parse_qs(link.query) == {
            "offer_id": [str(row["id"])],
            "aff_id": [str(world.aff_a.pk)],
        }


def test_affiliate_offer_shows_goal_payout_but_not_revenue_or_urls(world):
    rows = world.client_a.get("/api/v1/affiliate/offers/").json()["results"]
    row = next(r for r in rows if r["id"] == world.offers["x_approved"].pk)
    assert set(row) == {
        "id",
        "name",
        "status",
        "visibility",
        "currency",
        "attribution_window_days",
        "goals",
        "tracking_link",
    }
    assert row["goals"] == [
        {
            "id": world.goals["x_approved"].pk,
            "code": "lead",
            "name": "Lead",
            "payout_type": "fixed",
            "payout": "2.5000",
            "default_status": "approved",
            "is_default": True,
        }
    ]


def test_suspended_affiliate_sees_no_offers(world):
    world.aff_a.status = "suspended"
    world.aff_a.save(update_fields=["status"])
    assert _ids(world.client_a.get("/api/v1/affiliate/offers/")) == []


def test_affiliate_conversions_only_own(world):
    assert _ids(world.client_a.get("/api/v1/affiliate/conversions/"), "conversion_id") == [
        world.conversions["a2"].pk,
        world.conversions["a1"].pk,
    ]
    assert _ids(world.client_b.get("/api/v1/affiliate/conversions/"), "conversion_id") == [
        world.conversions["b2"].pk,
        world.conversions["b1"].pk,
    ]


def test_affiliate_conversion_fields(world):
    rows = world.client_a.get("/api/v1/affiliate/conversions/").json()["results"]
    row = next(r for r in rows if r["conversion_id"] == world.conversions["a1"].pk)
    assert row == {
        "conversion_id": world.conversions["a1"].pk,
        "created_at": "2024-05-10T12:00:00Z",
        "offer_id": world.offers["x_approved"].pk,
        "goal": "lead",
        "status": "approved",
        "payout": "2.50",
        "currency": "USD",
        "order_id": "order-a1",
        "click_id": "c-a1",
        "sub1": "a-sub1",
        "sub2": "a-sub2",
        "sub3": "",
        "sub4": "",
        "sub5": "",
        "source_id": "a-src",
        "quality_score": 80,
        "quality_reasons": ["fast_conversion"],
    }
    assert "revenue" not in row
    assert "adv1" not in row


def test_affiliate_conversions_status_filter(world):
    response = world.client_a.get("/api/v1/affiliate/conversions/?status=pending")
    assert _ids(response, "conversion_id") == [world.conversions["a2"].pk]
    # B's approved conversion never shows up for A, whatever the filter.
    response = world.client_a.get("/api/v1/affiliate/conversions/?status=approved")
    assert _ids(response, "conversion_id") == [world.conversions["a1"].pk]


def test_affiliate_conversions_unknown_status_is_400(world):
    response = world.client_a.get("/api/v1/affiliate/conversions/?status=bogus")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_filter"


def test_affiliate_stats_counts_only_own(world):
    params = "?date_from=2024-05-10&date_to=2024-05-10&timezone=UTC&group_by=offer"
    a = world.client_a.get("/api/v1/affiliate/stats/" + params).json()
    assert [row["offer"] for row in a["rows"]] == [
        world.offers["x_approved"].pk,
        world.offers["y_public"].pk,
    ]
    assert a["totals"] == [
        {
            "currency": "EUR",
            "clicks": 1,
            "unique_clicks": 1,
            "conversions": 0,
            "pending": 1,
            "rejected": 0,
            "payout": "0.00",
            "cr": "0.00",
            "epc": "0.0000",
        },
        {
            "currency": "USD",
            "clicks": 2,
            "unique_clicks": 1,
            "conversions": 1,
            "pending": 0,
            "rejected": 0,
            "payout": "2.50",
            "cr": "50.00",
            "epc": "1.2500",
        },
    ]
    b = world.client_b.get("/api/v1/affiliate/stats/" + params).json()
    assert [row["offer"] for row in b["rows"]] == sorted(
        [world.offers["x_public"].pk, world.offers["y_private_b"].pk]
    )
    assert [(t["currency"], t["clicks"], t["conversions"], t["rejected"]) for t in b["totals"]] == [
        ("USD", 2, 1, 1)
    ]


def test_affiliate_stats_filter_on_other_affiliate_gives_nothing(world):
    params = f"?date_from=2024-05-10&date_to=2024-05-10&affiliate={world.aff_b.pk}"
    response = world.client_a.get("/api/v1/affiliate/stats/" + params)
    assert response.status_code == 200
    assert response.json() == {"rows": [], "totals": []}


def test_affiliate_stats_have_no_revenue(world):
    body = world.client_a.get(
        "/api/v1/affiliate/stats/?date_from=2024-05-10&date_to=2024-05-10&group_by=offer"
    ).json()
    assert body["rows"]
    for row in body["rows"] + body["totals"]:
        assert "revenue" not in row
        assert "profit" not in row


def test_affiliate_balance_only_own_ledger(world):
    assert world.client_a.get("/api/v1/affiliate/balance/").json() == {
        "balances": [{"currency": "USD", "amount": "2.00"}]
    }
    assert world.client_b.get("/api/v1/affiliate/balance/").json() == {
        "balances": [{"currency": "EUR", "amount": "11.00"}, {"currency": "USD", "amount": "7.00"}]
    }


def test_affiliate_postbacks_list_only_own(world):
    assert _ids(world.client_a.get("/api/v1/affiliate/postbacks/")) == [world.postbacks["a"].pk]
    assert _ids(world.client_b.get("/api/v1/affiliate/postbacks/")) == [world.postbacks["b"].pk]


def test_affiliate_postback_retrieve_other_is_404(world):
    own = world.client_a.get(f"/api/v1/affiliate/postbacks/{world.postbacks['a'].pk}/")
    assert own.status_code == 200
    assert own.json()["url"] == "https://a.example.org/pb?c={click_id}"
    other = world.client_a.get(f"/api/v1/affiliate/postbacks/{world.postbacks['b'].pk}/")
    assert other.status_code == 404
    assert other.json()["code"] == "not_found"


def test_affiliate_postback_delete_other_is_404_and_kept(world):
    response = world.client_a.delete(f"/api/v1/affiliate/postbacks/{world.postbacks['b'].pk}/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert AffiliatePostback.objects.filter(pk=world.postbacks["b"].pk).exists()


def test_affiliate_postback_update_is_not_offered(world):
    url = f"/api/v1/affiliate/postbacks/{world.postbacks['b'].pk}/"
    response = world.client_a.patch(url, {"url": "https://evil.example.com/"}, format="json")
    assert response.status_code == 405
    assert AffiliatePostback.objects.get(pk=world.postbacks["b"].pk).url.startswith(
        "https://b.example.org"
    )


def test_affiliate_postback_odd_ids_are_404(world):
    for pk in ("abc", "0", "-1", "99999999999999999999999", "1.5"):
        response = world.client_a.get(f"/api/v1/affiliate/postbacks/{pk}/")
        assert response.status_code == 404, pk
        assert response.json()["code"] == "not_found"


# --- Advertiser --------------------------------------------------------------------------------


def test_advertiser_offers_only_own(world):
    x_keys = [k for k in world.offers if k.startswith("x_")]
    assert _ids(world.client_x.get("/api/v1/advertiser/offers/")) == _offer_ids(world, *x_keys)
    assert _ids(world.client_y.get("/api/v1/advertiser/offers/")) == _offer_ids(
        world, "y_public", "y_private_b"
    )


def test_advertiser_offer_shows_revenue(world):
    rows = world.client_y.get("/api/v1/advertiser/offers/").json()["results"]
    assert rows[0]["advertiser_id"] == world.adv_y.pk
    assert rows[0]["goals"][0]["revenue"] == "4.0000"
    assert rows[0]["pixel_methods"] == []  # server postbacks only, unless pixels are ticked


def test_advertiser_conversions_only_own_offers(world):
    assert _ids(world.client_x.get("/api/v1/advertiser/conversions/"), "conversion_id") == [
        world.conversions["b2"].pk,
        world.conversions["a1"].pk,
    ]
    assert _ids(world.client_y.get("/api/v1/advertiser/conversions/"), "conversion_id") == [
        world.conversions["b1"].pk,
        world.conversions["a2"].pk,
    ]


def test_advertiser_conversion_has_revenue_but_no_payout(world):
    rows = world.client_y.get("/api/v1/advertiser/conversions/").json()["results"]
    row = next(r for r in rows if r["conversion_id"] == world.conversions["b1"].pk)
    assert row["revenue"] == "9.00"
    assert row["adv1"] == "adv-b1"
    assert row["affiliate_id"] == world.aff_b.pk
    assert "payout" not in row
    assert "ip" not in row


def test_advertiser_stats_only_own_with_revenue_no_profit(world):
    params = "?date_from=2024-05-10&date_to=2024-05-10&group_by=offer"
    x = world.client_x.get("/api/v1/advertiser/stats/" + params).json()
    assert [row["offer"] for row in x["rows"]] == sorted(
        [world.offers["x_approved"].pk, world.offers["x_public"].pk]
    )
    assert x["totals"] == [
        {
            "currency": "USD",
            "clicks": 3,
            "unique_clicks": 2,
            "conversions": 1,
            "pending": 0,
            "rejected": 1,
            "payout": "2.50",
            "cr": "33.33",
            "epc": "0.8333",
            "revenue": "4.00",
        }
    ]
    y = world.client_y.get("/api/v1/advertiser/stats/" + params).json()
    assert [(t["currency"], t["clicks"], t["revenue"]) for t in y["totals"]] == [
        ("EUR", 1, "0.00"),
        ("USD", 1, "9.00"),
    ]
    for row in x["rows"] + x["totals"]:
        assert "profit" not in row
        assert "margin" not in row


# --- Network staff -----------------------------------------------------------------------------


def test_network_sees_everything(world):
    assert _ids(world.client_staff.get("/api/v1/network/offers/")) == sorted(
        o.pk for o in world.offers.values()
    )
    assert _ids(world.client_staff.get("/api/v1/network/affiliates/")) == [
        world.aff_a.pk,
        world.aff_b.pk,
    ]
    assert _ids(world.client_staff.get("/api/v1/network/conversions/"), "conversion_id") == sorted(
        (c.pk for c in world.conversions.values()), reverse=True
    )


def test_network_conversion_has_payout_and_revenue(world):
    rows = world.client_staff.get("/api/v1/network/conversions/").json()["results"]
    row = next(r for r in rows if r["conversion_id"] == world.conversions["a1"].pk)
    assert (row["payout"], row["revenue"], row["affiliate_id"]) == ("2.50", "4.00", world.aff_a.pk)


def test_network_stats_have_profit_and_margin(world):
    params = "?date_from=2024-05-10&date_to=2024-05-10&group_by=affiliate"
    body = world.client_staff.get("/api/v1/network/stats/" + params).json()
    assert [(r["affiliate"], r["currency"]) for r in body["rows"]] == [
        (world.aff_a.pk, "EUR"),
        (world.aff_a.pk, "USD"),
        (world.aff_b.pk, "USD"),
    ]
    assert body["totals"][1] == {
        "currency": "USD",
        "clicks": 4,
        "unique_clicks": 3,
        "conversions": 2,
        "pending": 0,
        "rejected": 1,
        "payout": "9.50",
        "cr": "50.00",
        "epc": "2.3750",
        "revenue": "13.00",
        "profit": "3.50",
        "margin": "26.92",
    }


# --- Pagination --------------------------------------------------------------------------------


def test_list_endpoints_paginate(world):
    for client, url in (
        (world.client_a, "/api/v1/affiliate/offers/"),
        (world.client_a, "/api/v1/affiliate/conversions/"),
        (world.client_a, "/api/v1/affiliate/postbacks/"),
        (world.client_x, "/api/v1/advertiser/offers/"),
        (world.client_x, "/api/v1/advertiser/conversions/"),
        (world.client_staff, "/api/v1/network/offers/"),
        (world.client_staff, "/api/v1/network/affiliates/"),
        (world.client_staff, "/api/v1/network/conversions/"),
    ):
        body = client.get(url).json()
        assert set(body) == {"count", "next", "previous", "results"}, url
        assert body["count"] == len(body["results"]), url


def test_pagination_pages_and_bad_page(world, settings):
    first = world.client_staff.get("/api/v1/network/offers/?page=1").json()
    assert first["count"] == len(world.offers)
    assert first["next"] is None
    response = world.client_staff.get("/api/v1/network/offers/?page=99")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    response = world.client_staff.get("/api/v1/network/offers/?page=abc")
    assert response.status_code == 404
