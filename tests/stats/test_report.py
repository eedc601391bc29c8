"""Stats numbers, exactly, for the dataset in conftest.py; grouping, time zones and filters."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from apps.stats.selectors import Scope, StatsQuery, stats_query_parse, stats_report

from .conftest import Dataset


def m(clicks, unique, conversions, pending, rejected, payout, cr, epc, **extra):  # noqa: PLR0917
    """One row's metrics, in the order the report lists them."""
    return {
        "clicks": clicks,
        "unique_clicks": unique,
        "conversions": conversions,
        "pending": pending,
        "rejected": rejected,
        "payout": payout,
        "cr": cr,
        "epc": epc,
        **extra,
    }


def report(
    ds: Dataset,
    group_by: tuple[str, ...],
    *,
    days=(1, 2),
    tz="UTC",
    filters=None,
    scope: Scope | None = None,
):
    query = StatsQuery(
        date_from=date(2024, 3, days[0]),
        date_to=date(2024, 3, days[1]),
        timezone=tz,
        group_by=group_by,
        filters=filters or {},
    )
    return stats_report(query=query, scope=scope or Scope(affiliate_id=ds.aff_a.pk))


def test_by_day(dataset):
    body = report(dataset, ("day",))
    assert body["rows"] == [
        {"day": "2024-03-01", "currency": "USD", **m(6, 5, 2, 1, 2, "12.50", "33.33", "2.0833")},
        {"day": "2024-03-02", "currency": "USD", **m(1, 1, 1, 0, 0, "2.50", "100.00", "2.5000")},
    ]
    assert body["totals"] == [{"currency": "USD", **m(7, 6, 3, 1, 2, "15.00", "42.86", "2.1429")}]


def test_by_offer(dataset):
    body = report(dataset, ("offer",))
    assert body["rows"] == [
        {"offer": dataset.o1.pk, "currency": "USD", **m(5, 4, 3, 1, 1, "15.00", "60.00", "3.0000")},
        {"offer": dataset.o2.pk, "currency": "USD", **m(2, 2, 0, 0, 1, "0.00", "0.00", "0.0000")},
    ]


def test_by_sub1(dataset):
    body = report(dataset, ("sub1",))
    assert body["rows"] == [
        {"sub1": "fb", "currency": "USD", **m(6, 5, 3, 1, 1, "15.00", "50.00", "2.5000")},
        {"sub1": "gg", "currency": "USD", **m(1, 1, 0, 0, 1, "0.00", "0.00", "0.0000")},
    ]


def test_by_goal_counts_conversions_only(dataset):
    body = report(dataset, ("goal",))
    assert body["rows"] == [
        {"goal": "lead", "currency": "USD", **m(0, 0, 2, 1, 2, "5.00", "0.00", "0.0000")},
        {"goal": "sale", "currency": "USD", **m(0, 0, 1, 0, 0, "10.00", "0.00", "0.0000")},
    ]


def test_by_hour_utc(dataset):
    body = report(dataset, ("hour",), days=(1, 1))
    assert body["rows"] == [
        {
            "hour": "2024-03-01T10:00:00+00:00",
            "currency": "USD",
            **m(3, 2, 2, 1, 0, "12.50", "66.67", "4.1667"),
        },
        {
            "hour": "2024-03-01T11:00:00+00:00",
            "currency": "USD",
            **m(1, 1, 0, 0, 1, "0.00", "0.00", "0.0000"),
        },
        {
            "hour": "2024-03-01T14:00:00+00:00",
            "currency": "USD",
            **m(2, 2, 0, 0, 1, "0.00", "0.00", "0.0000"),
        },
    ]


def test_by_day_and_offer(dataset):
    body = report(dataset, ("day", "offer"))
    assert [(r["day"], r["offer"], r["clicks"], r["conversions"]) for r in body["rows"]] == [
        ("2024-03-01", dataset.o1.pk, 4, 2),
        ("2024-03-01", dataset.o2.pk, 2, 0),
        ("2024-03-02", dataset.o1.pk, 1, 1),
    ]


def test_late_utc_conversion_is_next_day_in_tokyo(dataset):
    tokyo = report(dataset, ("day",), days=(1, 3), tz="Asia/Tokyo")
    assert [(r["day"], r["clicks"], r["conversions"], r["payout"]) for r in tokyo["rows"]] == [
        ("2024-03-01", 6, 2, "12.50"),
        ("2024-03-03", 1, 1, "2.50"),
    ]
    only_third = report(dataset, ("day",), days=(3, 3), tz="Asia/Tokyo")
    assert only_third["rows"] == [
        {"day": "2024-03-03", "currency": "USD", **m(1, 1, 1, 0, 0, "2.50", "100.00", "2.5000")}
    ]
    assert report(dataset, ("day",), days=(3, 3), tz="UTC")["rows"] == []


def test_hour_in_tokyo(dataset):
    body = report(dataset, ("hour",), days=(3, 3), tz="Asia/Tokyo")
    assert [r["hour"] for r in body["rows"]] == ["2024-03-03T08:00:00+09:00"]


def test_filters(dataset):
    body = report(dataset, ("offer",), filters={"sub1": "gg"})
    assert body["rows"] == [
        {"offer": dataset.o1.pk, "currency": "USD", **m(1, 1, 0, 0, 1, "0.00", "0.00", "0.0000")}
    ]
    body = report(dataset, ("day",), filters={"offer": str(dataset.o2.pk)})
    assert [(r["day"], r["clicks"], r["rejected"]) for r in body["rows"]] == [("2024-03-01", 2, 1)]
    body = report(dataset, ("day",), filters={"goal": "sale"}, days=(1, 1))
    # Clicks are not narrowed by goal (a click has none); conversions are.
    assert body["rows"] == [
        {"day": "2024-03-01", "currency": "USD", **m(6, 5, 1, 0, 0, "10.00", "16.67", "1.6667")}
    ]


def test_other_affiliate_is_not_counted(dataset):
    body = report(dataset, ("day",), days=(1, 1), scope=Scope(affiliate_id=dataset.aff_b.pk))
    assert body["rows"] == [
        {"day": "2024-03-01", "currency": "USD", **m(1, 1, 1, 0, 0, "2.50", "100.00", "2.5000")}
    ]


def test_staff_scope_has_revenue_profit_margin(dataset):
    body = report(dataset, ("affiliate",), days=(1, 1), scope=Scope(include_revenue=True))
    assert body["rows"] == [
        {
            "affiliate": dataset.aff_a.pk,
            "currency": "USD",
            **m(
                6,
                5,
                2,
                1,
                2,
                "12.50",
                "33.33",
                "2.0833",
                revenue="19.00",
                profit="6.50",
                margin="34.21",
            ),
        },
        {
            "affiliate": dataset.aff_b.pk,
            "currency": "USD",
            **m(
                1,
                1,
                1,
                0,
                0,
                "2.50",
                "100.00",
                "2.5000",
                revenue="4.00",
                profit="1.50",
                margin="37.50",
            ),
        },
    ]


def test_advertiser_scope_has_revenue_without_profit(dataset):
    scope = Scope(advertiser_id=dataset.o1.advertiser_id, include_revenue=True)
    body = report(dataset, ("day",), days=(1, 1), scope=scope)
    assert body["totals"] == [
        {"currency": "USD", **m(7, 6, 3, 1, 2, "15.00", "42.86", "2.1429", revenue="23.00")}
    ]


def test_rows_sort_numerically_by_id(db):
    from tests import factories

    advertiser = factories.AdvertiserFactory()
    affiliate = factories.AffiliateFactory()
    for pk in (9, 10, 100):
        offer = factories.OfferFactory(pk=pk, advertiser=advertiser)
        factories.ClickFactory(offer=offer, affiliate=affiliate)
    today = factories.ClickFactory._meta.model.objects.first().created_at.date()
    query = StatsQuery(today, today, "UTC", ("offer",), {})
    body = stats_report(query=query, scope=Scope(affiliate_id=affiliate.pk))
    assert [r["offer"] for r in body["rows"]] == [9, 10, 100]


def test_report_takes_two_queries(dataset, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        report(dataset, ("day", "offer", "sub1", "hour"))
    with django_assert_max_num_queries(1):
        report(dataset, ("goal",))


# --- Parsing -----------------------------------------------------------------------------------

TODAY = date(2024, 3, 5)
NOW = datetime(2024, 3, 5, 12, 0, tzinfo=UTC)


def parse(**params: str) -> StatsQuery:
    return stats_query_parse(params=params, default_timezone="Europe/Berlin", now=NOW)


def test_parse_defaults():
    query = parse()
    assert query == StatsQuery(TODAY, TODAY, "Europe/Berlin", ("day",), {})


def test_parse_today_is_in_the_report_time_zone():
    late_utc = datetime(2024, 3, 5, 16, 30, tzinfo=UTC)  # 01:30 on the 6th in Tokyo
    tokyo = stats_query_parse(params={}, default_timezone="Asia/Tokyo", now=late_utc)
    assert (tokyo.date_from, tokyo.date_to) == (date(2024, 3, 6), date(2024, 3, 6))
    utc = stats_query_parse(params={"timezone": "UTC"}, default_timezone="Asia/Tokyo", now=late_utc)
    assert (utc.date_from, utc.date_to) == (date(2024, 3, 5), date(2024, 3, 5))


def test_parse_full():
    query = parse(
        date_from="2024-03-01",
        date_to="2024-03-02",
        timezone="Asia/Tokyo",
        group_by="offer,sub1",
        offer="12",
        sub1="fb",
        unknown="x",
    )
    assert query == StatsQuery(
        date(2024, 3, 1),
        date(2024, 3, 2),
        "Asia/Tokyo",
        ("offer", "sub1"),
        {"offer": "12", "sub1": "fb"},
    )


def test_parse_longest_range_is_366_days():
    assert parse(date_from="2024-01-01", date_to="2024-12-31").date_to == date(2024, 12, 31)
    with pytest.raises(ValueError, match="date_range_too_long"):
        parse(date_from="2024-01-01", date_to="2025-01-01")


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"timezone": "Mars/Olympus"}, "invalid_timezone"),
        ({"timezone": "../../etc/passwd"}, "invalid_timezone"),
        ({"date_from": "2024-13-01"}, "invalid_date"),
        ({"date_to": "yesterday"}, "invalid_date"),
        ({"date_from": "9999-12-31", "date_to": "9999-12-31"}, "invalid_date"),
        ({"date_from": "0001-01-01", "date_to": "0001-01-01"}, "invalid_date"),
        ({"date_from": "2024-03-02", "date_to": "2024-03-01"}, "date_from_after_date_to"),
        ({"date_from": "2020-01-01", "date_to": "2024-01-01"}, "date_range_too_long"),
        ({"group_by": "day,bogus"}, "invalid_group_by"),
        ({"group_by": "day,day"}, "invalid_group_by"),
        ({"group_by": ","}, "invalid_group_by"),
        ({"group_by": "currency"}, "invalid_group_by"),
        ({"offer": "abc"}, "invalid_filter"),
        ({"offer": "-1"}, "invalid_filter"),
        ({"affiliate": "1" * 19}, "invalid_filter"),
        ({"offer": "١٢"}, "invalid_filter"),
        ({"sub1": "a\x00b"}, "invalid_filter"),
    ],
)
def test_parse_refuses(params, code):
    with pytest.raises(ValueError, match=f"^{code}$"):
        parse(**params)
