"""The staff quality report endpoint: staff only, exact rows, bad input is a 400 with a code."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.quality.services import Reason
from tests import factories

pytestmark = pytest.mark.django_db
URL = "/api/v1/network/quality-report/"


def _client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.api_key_for(user)}")
    return client


def test_report_for_staff():
    conversion = factories.ConversionFactory(
        quality_score=40, quality_reasons=[Reason.BOT_USER_AGENT]
    )
    today = str(conversion.created_at.date())
    response = _client(factories.UserFactory(is_staff=True)).get(
        URL, {"date_from": today, "date_to": today, "affiliate": conversion.affiliate_id}
    )
    assert response.status_code == 200
    assert response.json()["results"] == [
        {
            "affiliate_id": conversion.affiliate_id,
            "sub1": "",
            "conversions": 1,
            "flagged": 1,
            "flagged_share": 1.0,
            "top_reasons": [[Reason.BOT_USER_AGENT, 1]],
        }
    ]


def test_affiliates_cannot_see_the_report():
    user = factories.UserFactory(affiliate=factories.AffiliateFactory())
    assert _client(user).get(URL).status_code == 403


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"date_from": "nope"}, "invalid_query"),
        ({"offer": "x"}, "invalid_query"),
        ({"date_from": "2024-02-01", "date_to": "2024-01-01"}, "invalid_date_range"),
        ({"date_from": "0001-01-01", "date_to": "9999-12-31"}, "invalid_date_range"),
    ],
)
def test_bad_input_is_a_400_with_a_code(params, code):
    response = _client(factories.UserFactory(is_staff=True)).get(URL, params)
    assert (response.status_code, response.json()["code"]) == (400, code)
