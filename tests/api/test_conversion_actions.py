"""Status changes over the API: staff status/reverse/history, advertiser scrub/history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from rest_framework.test import APIClient

from apps.conversions.models import Conversion, ConversionStatusChange, StatusChangeSource
from apps.conversions.status import conversion_status_change
from apps.offers.models import ConversionStatus
from tests import factories

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.api_key_for(user)}")
    return client


@pytest.fixture
def staff(db):
    return factories.UserFactory(is_staff=True)


@pytest.fixture
def staff_api(staff):
    return _client(staff)


@pytest.fixture
def adv_user(advertiser):
    return factories.UserFactory(advertiser=advertiser)


@pytest.fixture
def adv_api(adv_user):
    return _client(adv_user)


@pytest.fixture
def other_adv_api(db):
    return _client(factories.UserFactory(advertiser=factories.AdvertiserFactory()))


@pytest.fixture
def aff_api(affiliate):
    return _client(factories.UserFactory(affiliate=affiliate))


@pytest.fixture
def make(goal, affiliate):
    """A conversion on the `advertiser` fixture's offer."""

    def _make(status: str = ConversionStatus.APPROVED, created_at: datetime | None = None):
        click = factories.ClickFactory(offer=goal.offer, affiliate=affiliate)
        return factories.ConversionFactory(
            click=click, goal=goal, status=status, created_at=created_at or T0
        )

    return _make


def _status_url(pk: int) -> str:
    return f"/api/v1/network/conversions/{pk}/status/"


def _reverse_url(pk: int) -> str:
    return f"/api/v1/network/conversions/{pk}/reverse/"


def _staff_history_url(pk: int) -> str:
    return f"/api/v1/network/conversions/{pk}/history/"


def _scrub_url(pk: int) -> str:
    return f"/api/v1/advertiser/conversions/{pk}/scrub/"


def _adv_history_url(pk: int) -> str:
    return f"/api/v1/advertiser/conversions/{pk}/history/"


def _rows(conversion: Conversion) -> list[tuple]:
    return list(
        ConversionStatusChange.objects.filter(conversion=conversion)
        .order_by("id")
        .values_list("old_status", "new_status", "source", "user_id", "reason")
    )


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


# --- staff: status --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("pending", "approved"),
        ("pending", "rejected"),
        ("approved", "reversed"),
        ("rejected", "approved"),  # staff may undo a rejection
    ],
)
def test_staff_moves_a_conversion(staff_api, staff, make, old, new):
    conversion = make(status=old)
    response = staff_api.post(
        _status_url(conversion.pk), {"status": new, "reason": "checked"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"conversion_id": conversion.pk, "status": new, "changed": True}
    conversion.refresh_from_db()
    assert conversion.status == new
    assert _rows(conversion) == [(old, new, "api", staff.pk, "checked")]


def test_staff_same_status_is_a_no_op(staff_api, make):
    conversion = make(status="approved")
    response = staff_api.post(_status_url(conversion.pk), {"status": "approved"}, format="json")
    assert response.status_code == 200
    assert response.json() == {
        "conversion_id": conversion.pk,
        "status": "approved",
        "changed": False,
    }
    assert ConversionStatusChange.objects.count() == 0


def test_reason_is_optional(staff_api, staff, make):
    conversion = make(status="pending")
    response = staff_api.post(_status_url(conversion.pk), {"status": "rejected"}, format="json")
    assert response.status_code == 200
    assert _rows(conversion) == [("pending", "rejected", "api", staff.pk, "")]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("pending", "reversed"),
        ("approved", "pending"),
        ("approved", "rejected"),
        ("rejected", "pending"),
        ("rejected", "reversed"),
        ("reversed", "approved"),
        ("reversed", "pending"),
        ("reversed", "rejected"),
    ],
)
def test_staff_invalid_transition_is_409(staff_api, make, old, new):
    conversion = make(status=old)
    response = staff_api.post(_status_url(conversion.pk), {"status": new}, format="json")
    assert response.status_code == 409
    assert response.json() == {
        "code": "invalid_transition",
        "detail": f"a {old} conversion cannot become {new}",
    }
    conversion.refresh_from_db()
    assert conversion.status == old
    assert ConversionStatusChange.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        {"status": "paid"},
        {"status": "APPROVED"},
        {"status": ""},
        {},
        {"status": "approved", "reason": "x" * 256},
        {"status": ["approved"]},
    ],
    ids=["unknown", "upper", "blank", "missing", "long-reason", "list"],
)
def test_staff_invalid_body_is_400_invalid(staff_api, make, body):
    conversion = make(status="pending")
    response = staff_api.post(_status_url(conversion.pk), body, format="json")
    assert response.status_code == 400
    data = response.json()
    assert (data["code"], data["detail"]) == ("invalid", "Invalid input.")
    assert set(data["errors"]) == ({"reason"} if "reason" in body else {"status"})
    conversion.refresh_from_db()
    assert conversion.status == "pending"
    assert ConversionStatusChange.objects.count() == 0


def test_staff_unknown_conversion_is_404(staff_api):
    response = staff_api.post(_status_url(987654321), {"status": "approved"}, format="json")
    assert response.status_code == 404
    assert response.json() == {"code": "conversion_not_found", "detail": "conversion not found"}


# --- staff: reverse -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        ("approved", "reversed", True),
        ("pending", "rejected", True),
        ("rejected", "rejected", False),
        ("reversed", "reversed", False),
    ],
)
def test_staff_reverse(staff_api, staff, make, *, old, new, changed):
    conversion = make(status=old)
    response = staff_api.post(_reverse_url(conversion.pk), {"reason": "chargeback"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"conversion_id": conversion.pk, "status": new, "changed": changed}
    expected = [(old, new, "api", staff.pk, "chargeback")] if changed else []
    assert _rows(conversion) == expected


def test_staff_reverse_twice_is_idempotent(staff_api, make):
    conversion = make(status="approved")
    first = staff_api.post(_reverse_url(conversion.pk), {}, format="json")
    second = staff_api.post(_reverse_url(conversion.pk), {}, format="json")
    assert (first.json()["changed"], second.json()["changed"]) == (True, False)
    assert second.json()["status"] == "reversed"
    assert ConversionStatusChange.objects.filter(conversion=conversion).count() == 1


def test_staff_reverse_unknown_is_404(staff_api):
    response = staff_api.post(_reverse_url(987654321), {}, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "conversion_not_found"


# --- staff: history -------------------------------------------------------------------------------


def test_staff_history(staff_api, staff, make):
    conversion = make(status="pending")
    t1, t2 = T0 + timedelta(hours=1), T0 + timedelta(hours=2, microseconds=500)
    conversion_status_change(
        conversion_id=conversion.pk,
        new_status=ConversionStatus.REJECTED,
        source=StatusChangeSource.QUALITY_REVIEW,
        now=t1,
        reason="bot",
    )
    conversion_status_change(
        conversion_id=conversion.pk,
        new_status=ConversionStatus.APPROVED,
        source=StatusChangeSource.ADMIN,
        now=t2,
        user_id=staff.pk,
        reason="false positive",
    )
    other = make(status="pending")
    conversion_status_change(
        conversion_id=other.pk,
        new_status=ConversionStatus.APPROVED,
        source=StatusChangeSource.API,
        now=t1,
    )

    response = staff_api.get(_staff_history_url(conversion.pk))

    assert response.status_code == 200
    assert response.json() == [
        {
            "created_at": "2026-03-02T13:00:00Z",
            "old_status": "pending",
            "new_status": "rejected",
            "source": "quality_review",
            "user_id": None,
            "reason": "bot",
        },
        {
            "created_at": "2026-03-02T14:00:00.000500Z",
            "old_status": "rejected",
            "new_status": "approved",
            "source": "admin",
            "user_id": staff.pk,
            "reason": "false positive",
        },
    ]
    assert response.json()[1]["created_at"] == _iso(t2)


def test_staff_history_of_an_unchanged_conversion_is_empty(staff_api, make):
    conversion = make()
    response = staff_api.get(_staff_history_url(conversion.pk))
    assert (response.status_code, response.json()) == (200, [])


def test_staff_history_unknown_is_404(staff_api):
    response = staff_api.get(_staff_history_url(987654321))
    assert response.status_code == 404
    assert response.json() == {"code": "conversion_not_found", "detail": "conversion not found"}


def test_status_then_history_round_trip(staff_api, staff, make):
    conversion = make(status="pending")
    staff_api.post(
        _status_url(conversion.pk), {"status": "approved", "reason": "ok"}, format="json"
    )
    staff_api.post(_reverse_url(conversion.pk), {"reason": "refund"}, format="json")
    history = staff_api.get(_staff_history_url(conversion.pk)).json()
    assert [
        (h["old_status"], h["new_status"], h["source"], h["user_id"], h["reason"]) for h in history
    ] == [
        ("pending", "approved", "api", staff.pk, "ok"),
        ("approved", "reversed", "api", staff.pk, "refund"),
    ]
    stored = list(
        ConversionStatusChange.objects.filter(conversion=conversion)
        .order_by("id")
        .values_list("created_at", flat=True)
    )
    assert [h["created_at"] for h in history] == [_iso(t) for t in stored]


# --- who may call the staff endpoints ----------------------------------------------------------


@pytest.mark.parametrize("who", ["aff_api", "adv_api"])
@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("post", _status_url, {"status": "rejected"}),
        ("post", _reverse_url, {}),
        ("get", _staff_history_url, None),
    ],
    ids=["status", "reverse", "history"],
)
def test_staff_endpoints_refuse_other_roles(request, make, *, who, method, url, body):
    client = request.getfixturevalue(who)
    conversion = make(status="pending")
    kwargs = {"format": "json"} if body is not None else {}
    response = getattr(client, method)(url(conversion.pk), body, **kwargs)
    assert response.status_code == 403
    assert response.json() == {
        "code": "permission_denied",
        "detail": "This endpoint is not for your account type.",
    }
    conversion.refresh_from_db()
    assert conversion.status == "pending"
    assert ConversionStatusChange.objects.count() == 0


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", _status_url),
        ("post", _reverse_url),
        ("get", _staff_history_url),
        ("post", _scrub_url),
        ("get", _adv_history_url),
    ],
)
def test_no_key_is_401(make, method, url):
    conversion = make()
    response = getattr(APIClient(), method)(url(conversion.pk))
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


# --- advertiser: scrub ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        ("approved", "reversed", True),
        ("pending", "rejected", True),
        ("rejected", "rejected", False),
        ("reversed", "reversed", False),
    ],
)
def test_advertiser_scrubs_its_own(adv_api, adv_user, make, *, old, new, changed):
    conversion = make(status=old, created_at=T0)
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        response = adv_api.post(_scrub_url(conversion.pk), {"reason": "fraud"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"conversion_id": conversion.pk, "status": new, "changed": changed}
    assert _rows(conversion) == ([(old, new, "scrub", adv_user.pk, "fraud")] if changed else [])
    if changed:
        change = ConversionStatusChange.objects.get(conversion=conversion)
        assert change.created_at == T0 + timedelta(days=1)


@pytest.mark.parametrize(
    ("window", "after", "allowed"),
    [
        (30, timedelta(days=30), True),
        (30, timedelta(days=30, microseconds=1), False),
        (30, timedelta(days=30, seconds=1), False),
        (7, timedelta(days=6, hours=23), True),
        (7, timedelta(days=7), True),
        (7, timedelta(days=7, seconds=1), False),
        (0, timedelta(seconds=1), False),
        (1, timedelta(0), True),
    ],
)
def test_scrub_window_edges(adv_api, advertiser, make, *, window, after, allowed):
    advertiser.scrub_window_days = window
    advertiser.save()
    conversion = make(status="approved", created_at=T0)
    with time_machine.travel(T0 + after, tick=False):
        response = adv_api.post(_scrub_url(conversion.pk), {}, format="json")
    conversion.refresh_from_db()
    if allowed:
        assert response.status_code == 200
        assert response.json()["status"] == "reversed"
        assert conversion.status == "reversed"
    else:
        assert response.status_code == 409
        assert response.json() == {
            "code": "scrub_window_closed",
            "detail": f"conversions can be scrubbed for {window} days after they happen",
        }
        assert conversion.status == "approved"
        assert ConversionStatusChange.objects.count() == 0


def test_scrub_of_another_advertisers_conversion_is_404(other_adv_api, make):
    conversion = make(status="approved")
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        response = other_adv_api.post(_scrub_url(conversion.pk), {}, format="json")
    assert response.status_code == 404
    assert response.json() == {"code": "conversion_not_found", "detail": "conversion not found"}
    conversion.refresh_from_db()
    assert conversion.status == "approved"
    assert ConversionStatusChange.objects.count() == 0


def test_scrub_of_another_advertisers_conversion_answers_like_an_unknown_one(other_adv_api, make):
    conversion = make(status="approved")
    theirs = other_adv_api.post(_scrub_url(conversion.pk), {}, format="json")
    unknown = other_adv_api.post(_scrub_url(987654321), {}, format="json")
    assert (theirs.status_code, theirs.json()) == (unknown.status_code, unknown.json())


def test_scrub_reason_too_long_is_400(adv_api, make):
    conversion = make(status="approved")
    response = adv_api.post(_scrub_url(conversion.pk), {"reason": "x" * 256}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert set(response.json()["errors"]) == {"reason"}


@pytest.mark.parametrize("who", ["aff_api", "staff_api"])
@pytest.mark.parametrize(
    ("method", "url"), [("post", _scrub_url), ("get", _adv_history_url)], ids=["scrub", "history"]
)
def test_advertiser_endpoints_refuse_other_roles(request, make, who, method, url):
    client = request.getfixturevalue(who)
    conversion = make(status="approved")
    response = getattr(client, method)(url(conversion.pk))
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    conversion.refresh_from_db()
    assert conversion.status == "approved"


# --- advertiser: history --------------------------------------------------------------------------


def test_advertiser_history_of_its_own(adv_api, adv_user, make):
    conversion = make(status="approved", created_at=T0)
    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        adv_api.post(_scrub_url(conversion.pk), {"reason": "returned"}, format="json")
    response = adv_api.get(_adv_history_url(conversion.pk))
    assert response.status_code == 200
    assert response.json() == [
        {
            "created_at": "2026-03-04T12:00:00Z",
            "old_status": "approved",
            "new_status": "reversed",
            "source": "scrub",
            "user_id": adv_user.pk,
            "reason": "returned",
        }
    ]


def test_advertiser_history_of_another_advertisers_conversion_is_404(other_adv_api, make):
    conversion = make(status="pending")
    conversion_status_change(
        conversion_id=conversion.pk,
        new_status=ConversionStatus.APPROVED,
        source=StatusChangeSource.API,
        now=T0,
    )
    theirs = other_adv_api.get(_adv_history_url(conversion.pk))
    unknown = other_adv_api.get(_adv_history_url(987654321))
    assert theirs.status_code == 404
    assert theirs.json() == {"code": "conversion_not_found", "detail": "conversion not found"}
    assert (unknown.status_code, unknown.json()) == (404, theirs.json())
