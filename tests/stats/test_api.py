"""Stats over HTTP: audiences, default time zone, error codes, CSV, query count."""

from __future__ import annotations

import csv
import io

import pytest
import time_machine

from tests import factories
from tests.api.conftest import client_for

from .conftest import Dataset

URL = "/api/v1/affiliate/stats/"


@pytest.fixture
def client_a(dataset: Dataset):
    return client_for(factories.UserFactory(affiliate=dataset.aff_a))


@pytest.fixture
def staff(dataset: Dataset):
    return client_for(factories.UserFactory(is_staff=True))


def test_affiliate_stats_by_day(client_a):
    response = client_a.get(URL, {"date_from": "2024-03-01", "date_to": "2024-03-02"})
    assert response.status_code == 200
    assert [
        (r["day"], r["clicks"], r["conversions"], r["payout"]) for r in response.json()["rows"]
    ] == [
        ("2024-03-01", 6, 2, "12.50"),
        ("2024-03-02", 1, 1, "2.50"),
    ]


def test_affiliate_default_timezone_is_used(client_a, dataset):
    dataset.aff_a.timezone = "Asia/Tokyo"
    dataset.aff_a.save(update_fields=["timezone"])
    params = {"date_from": "2024-03-03", "date_to": "2024-03-03"}
    rows = client_a.get(URL, params).json()["rows"]
    assert [(r["day"], r["clicks"], r["conversions"]) for r in rows] == [("2024-03-03", 1, 1)]
    hours = client_a.get(URL, {**params, "group_by": "hour"}).json()["rows"]
    assert [r["hour"] for r in hours] == ["2024-03-03T08:00:00+09:00"]
    # An explicit time zone wins over the account's.
    assert client_a.get(URL, {**params, "timezone": "UTC"}).json()["rows"] == []


def test_default_dates_are_today_in_the_account_time_zone(client_a, dataset):
    dataset.aff_a.timezone = "Asia/Tokyo"
    dataset.aff_a.save(update_fields=["timezone"])
    with time_machine.travel("2024-03-02T16:00:00Z", tick=False):  # 01:00 on the 3rd in Tokyo
        rows = client_a.get(URL).json()["rows"]
    assert [(r["day"], r["conversions"]) for r in rows] == [("2024-03-03", 1)]


def test_advertiser_default_timezone_is_utc(dataset):
    client = client_for(factories.UserFactory(advertiser=dataset.o1.advertiser, is_staff=True))
    rows = client.get(
        "/api/v1/advertiser/stats/", {"date_from": "2024-03-02", "date_to": "2024-03-02"}
    ).json()["rows"]
    assert [(r["day"], r["clicks"], r["revenue"]) for r in rows] == [("2024-03-02", 1, "4.00")]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"timezone": "Mars/Olympus"}, "invalid_timezone"),
        ({"date_from": "2024-02-30"}, "invalid_date"),
        ({"date_from": "9999-12-31", "date_to": "9999-12-31"}, "invalid_date"),
        (
            {"date_from": "0001-01-01", "date_to": "0001-01-01", "timezone": "Asia/Tokyo"},
            "invalid_date",
        ),
        ({"date_from": "2024-03-02", "date_to": "2024-03-01"}, "date_from_after_date_to"),
        ({"date_from": "2023-01-01", "date_to": "2024-12-31"}, "date_range_too_long"),
        ({"group_by": "day,weekday"}, "invalid_group_by"),
        ({"group_by": "offer,offer"}, "invalid_group_by"),
        ({"offer": "abc"}, "invalid_filter"),
        ({"affiliate": "9" * 30}, "invalid_filter"),
    ],
)
def test_bad_input_is_400_with_code(client_a, params, code):
    response = client_a.get(URL, {"date_from": "2024-03-01", "date_to": "2024-03-02", **params})
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert set(response.json()) == {"code", "detail"}


@pytest.mark.parametrize(
    "url", ["/api/v1/affiliate/stats/", "/api/v1/advertiser/stats/", "/api/v1/network/stats/"]
)
def test_every_stats_endpoint_validates(dataset, url):
    users = {
        "affiliate": factories.UserFactory(affiliate=dataset.aff_a),
        "advertiser": factories.UserFactory(advertiser=dataset.o1.advertiser, is_staff=True),
        "network": factories.UserFactory(is_staff=True),
    }
    client = client_for(users[url.split("/")[3]])
    response = client.get(url, {"timezone": "Nowhere/Land"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_timezone"


def test_csv(client_a):
    response = client_a.get(
        URL,
        {"date_from": "2024-03-01", "date_to": "2024-03-02", "group_by": "sub1", "format": "csv"},
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="stats.csv"'
    assert list(csv.reader(io.StringIO(response.content.decode()))) == [
        [
            "sub1",
            "currency",
            "clicks",
            "unique_clicks",
            "conversions",
            "pending",
            "rejected",
            "payout",
            "cr",
            "epc",
        ],
        ["fb", "USD", "6", "5", "3", "1", "1", "15.00", "50.00", "2.5000"],
        ["gg", "USD", "1", "1", "0", "0", "1", "0.00", "0.00", "0.0000"],
    ]


def test_csv_of_empty_report_has_header(staff):
    response = staff.get(
        "/api/v1/network/stats/",
        {"date_from": "2020-01-01", "date_to": "2020-01-01", "format": "csv"},
    )
    assert response.status_code == 200
    assert response.content.decode() == (
        "day,currency,clicks,unique_clicks,conversions,pending,rejected,payout,cr,epc,"
        "revenue,profit,margin\r\n"
    )


def test_csv_neutralises_formulas(dataset, client_a):
    factories.ClickFactory(
        offer=dataset.o1,
        affiliate=dataset.aff_a,
        sub1='=HYPERLINK("http://x")',
        created_at=dataset.o1.created_at.replace(year=2024, month=3, day=4),
    )
    response = client_a.get(
        URL,
        {"date_from": "2024-03-04", "date_to": "2024-03-04", "group_by": "sub1", "format": "csv"},
    )
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[1][0] == '\'=HYPERLINK("http://x")'


def test_csv_errors_stay_json(client_a):
    response = client_a.get(URL, {"format": "csv", "timezone": "bad"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "invalid_timezone"


def test_csv_needs_auth(db):
    from rest_framework.test import APIClient

    response = APIClient().get(URL, {"format": "csv"})
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_stats_endpoint_query_bound(client_a, django_assert_max_num_queries):
    params = {"date_from": "2024-03-01", "date_to": "2024-03-02", "group_by": "day,offer,sub1"}
    client_a.get(URL, params)  # the key's first use also notes last_used_at (one UPDATE)
    with django_assert_max_num_queries(3):  # API key lookup + clicks + conversions
        response = client_a.get(URL, params)
    assert response.status_code == 200
