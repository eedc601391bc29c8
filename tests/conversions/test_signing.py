"""HMAC-signed postbacks (apps.advertisers.signing) over HTTP, and the admin that issues secrets.

Every request here is signed the way an advertiser's server would: over the exact bytes sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from apps.accounts.models import User
from apps.accounts.services import advertiser_user_create
from apps.advertisers.models import Advertiser
from apps.advertisers.services import advertiser_rotate_signing_secret
from apps.advertisers.signing import (
    SignatureRejected,
    advertiser_signature_check,
    signature_compute,
    signing_message,
)
from apps.common.crypto import secret_decrypt
from apps.conversions.models import Conversion, InboundPostbackLog
from apps.offers.models import PayoutType
from tests import factories
from tests.admin.conftest import admin_form_data

pytestmark = pytest.mark.django_db

TOKEN = factories.ADVERTISER_TOKEN


def _sign(secret: str, *, ts: int, method: str, path: str, query: str, body: bytes = b"") -> str:
    """An advertiser's own implementation, written from the documented scheme (not ours)."""
    message = f"{ts}\n{method}\n{path}\n{query}\n".encode() + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _headers(signature: str | None, ts: int | str | None) -> dict[str, str]:
    headers = {}
    if ts is not None:
        headers["X-OpenCPA-Timestamp"] = str(ts)
    if signature is not None:
        headers["X-OpenCPA-Signature"] = signature
    return headers


@pytest.fixture
def secret(click) -> str:
    return advertiser_rotate_signing_secret(advertiser=click.offer.advertiser)


@pytest.fixture
def sale_goal(goal):
    return factories.GoalFactory(
        offer=goal.offer,
        code="sale",
        is_default=False,
        payout_type=PayoutType.PERCENT,
        revenue_type=PayoutType.PERCENT,
        payout=Decimal("10"),
        revenue=Decimal("15"),
    )


def signed_get(client: Client, secret: str, params: dict[str, str], *, path="/postback", **kw):
    query = urlencode(params)
    ts = kw.pop("ts", int(time.time()))
    signature = kw.pop("signature", None) or _sign(
        secret, ts=ts, method="GET", path=path, query=query
    )
    return client.get(f"{path}?{query}", headers=_headers(signature, ts))


def signed_post(
    client: Client, secret: str, body: bytes, *, content_type: str, query: str = "", **kw
):
    ts = kw.pop("ts", int(time.time()))
    signature = _sign(secret, ts=ts, method="POST", path="/postback", query=query, body=body)
    url = f"/postback?{query}" if query else "/postback"
    return client.post(url, body, content_type=content_type, headers=_headers(signature, ts))


def _rejected(response, reason: str, http_status: int = 403) -> InboundPostbackLog:
    assert response.status_code == http_status, response.content
    assert response.json() == {
        "result": "rejected",
        "conversion_id": None,
        "status": None,
        "reason": reason,
    }
    assert Conversion.objects.count() == 0
    log = InboundPostbackLog.objects.get()
    assert (log.result, log.reason, log.http_status, log.conversion_id) == (
        "rejected",
        reason,
        http_status,
        None,
    )
    return log


# --- accepted -------------------------------------------------------------------------------------


def test_signed_get_is_accepted_without_a_token(client, click, secret):
    response = signed_get(client, secret, {"click_id": click.click_id, "order_id": "S-1"})

    assert response.status_code == 200, response.content
    conversion = Conversion.objects.get()
    assert response.json()["conversion_id"] == conversion.pk
    assert (conversion.order_id, conversion.method) == ("S-1", "postback")
    log = InboundPostbackLog.objects.get()
    assert (log.result, log.reason) == ("accepted", "")
    # The debugger shows that the call was signed, never the signature itself.
    assert log.headers["x-opencpa-signature"] == "***"
    assert log.headers["x-opencpa-timestamp"].isdigit()
    assert log.body == ""


def test_signed_get_with_the_right_token_too(client, click, secret):
    response = signed_get(client, secret, {"click_id": click.click_id, "token": TOKEN})
    assert response.json()["result"] == "accepted"


def test_a_signed_postback_with_a_wrong_token_is_refused(client, click, secret):
    _rejected(
        signed_get(client, secret, {"click_id": click.click_id, "token": "nope"}), "bad_token"
    )


def test_signed_post_json(client, click, secret, sale_goal):
    body = json.dumps(
        {"click_id": click.click_id, "goal": "sale", "amount": "80.00", "order_id": "J-1"}
    ).encode()
    response = signed_post(client, secret, body, content_type="application/json")

    assert response.status_code == 200, response.content
    conversion = Conversion.objects.get()
    assert (conversion.goal, conversion.sale_amount, conversion.payout) == (
        sale_goal,
        Decimal("80.00"),
        Decimal("8.00"),
    )
    log = InboundPostbackLog.objects.get()
    assert log.body == body.decode()
    assert log.headers["content-type"] == "application/json"


def test_signed_post_form_with_a_query_string(client, click, secret):
    body = urlencode({"click_id": click.click_id, "order_id": "F-1"}).encode()
    response = signed_post(
        client,
        secret,
        body,
        content_type="application/x-www-form-urlencoded",
        query="adv1=from%20query&adv2=x",
    )
    assert response.status_code == 200, response.content
    conversion = Conversion.objects.get()
    assert (conversion.order_id, conversion.adv1, conversion.adv2) == ("F-1", "from query", "x")


def test_the_query_string_is_signed_as_sent_not_re_encoded(client, click, secret):
    """`%7E` and `~`, `+` and `%20`, parameter order: the bytes sent are the bytes signed."""
    query = f"adv1=a+b%7Ec&click_id={click.click_id}&adv2=%C3%A9"
    ts = int(time.time())
    signature = _sign(secret, ts=ts, method="GET", path="/postback", query=query)
    response = client.get(f"/postback?{query}", headers=_headers(signature, ts))
    assert response.status_code == 200, response.content
    assert (Conversion.objects.get().adv1, Conversion.objects.get().adv2) == ("a b~c", "é")


def test_a_raw_non_utf8_byte_in_the_query_is_signed_as_the_byte_sent(client, click, secret):
    """Not percent-encoded, not UTF-8: still no 500, and the signature covers the byte itself."""
    raw_query = f"click_id={click.click_id}&adv1=caf".encode() + b"\xe9"
    ts = int(time.time())
    message = f"{ts}\nGET\n/postback\n".encode() + raw_query + b"\n"
    signature = "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    response = client.get(
        "/postback",
        QUERY_STRING=raw_query.decode("latin-1"),  # how WSGI hands raw bytes over (PEP 3333)
        headers=_headers(signature, ts),
    )
    assert response.status_code == 200, response.content
    assert response.json()["result"] == "accepted"


@pytest.mark.parametrize("path", ["/aff_lsr", "/aff_goal"])
def test_signed_hasoffers_paths(client, click, secret, path):
    response = signed_get(client, secret, {"transaction_id": click.click_id}, path=path)
    assert response.json()["result"] == "accepted"


def test_several_signatures_while_rotating_and_upper_case_hex(client, click, secret):
    query = urlencode({"click_id": click.click_id})
    ts = int(time.time())
    good = _sign(secret, ts=ts, method="GET", path="/postback", query=query)
    stale = _sign("whsec_old", ts=ts, method="GET", path="/postback", query=query)
    header = f"{stale}, v1={good.removeprefix('v1=').upper()}"
    response = client.get(f"/postback?{query}", headers=_headers(header, ts))
    assert response.json()["result"] == "accepted"


def test_signature_makes_a_required_token_unnecessary_and_a_required_signature_pass(
    client, click, secret
):
    advertiser = click.offer.advertiser
    advertiser.require_token = True
    advertiser.require_signature = True
    advertiser.save()
    response = signed_get(client, secret, {"click_id": click.click_id})
    assert response.json()["result"] == "accepted"


# --- refused --------------------------------------------------------------------------------------


def test_wrong_signature(client, click, secret):
    log = _rejected(
        signed_get(client, secret, {"click_id": click.click_id}, signature="v1=" + "0" * 64),
        "bad_signature",
    )
    assert log.advertiser == click.offer.advertiser
    assert log.headers["x-opencpa-signature"] == "***"


def test_signed_with_another_secret(client, click, secret):
    _rejected(
        signed_get(client, "whsec_someone_else", {"click_id": click.click_id}), "bad_signature"
    )


def test_tampered_json_body(client, click, secret):
    body = json.dumps({"click_id": click.click_id, "amount": "10.00"}).encode()
    ts = int(time.time())
    signature = _sign(secret, ts=ts, method="POST", path="/postback", query="", body=body)
    tampered = body.replace(b"10.00", b"99.00")
    _rejected(
        client.post(
            "/postback",
            tampered,
            content_type="application/json",
            headers=_headers(signature, ts),
        ),
        "bad_signature",
    )


def test_tampered_query_string(client, click, secret):
    query = urlencode({"click_id": click.click_id, "amount": "10"})
    ts = int(time.time())
    signature = _sign(secret, ts=ts, method="GET", path="/postback", query=query)
    _rejected(
        client.get(f"/postback?{query}&status=approved", headers=_headers(signature, ts)),
        "bad_signature",
    )


def test_signature_for_another_path_or_method(client, click, secret):
    query = urlencode({"click_id": click.click_id})
    ts = int(time.time())
    for_lsr = _sign(secret, ts=ts, method="GET", path="/aff_lsr", query=query)
    _rejected(client.get(f"/postback?{query}", headers=_headers(for_lsr, ts)), "bad_signature")
    InboundPostbackLog.objects.all().delete()
    for_post = _sign(secret, ts=ts, method="POST", path="/postback", query=query)
    _rejected(client.get(f"/postback?{query}", headers=_headers(for_post, ts)), "bad_signature")


@pytest.mark.parametrize("skew", [301, -301, 86400, -86400])
def test_stale_or_future_timestamp(client, click, secret, skew):
    ts = int(time.time()) - skew
    _rejected(signed_get(client, secret, {"click_id": click.click_id}, ts=ts), "signature_expired")


def test_the_window_is_five_minutes_either_way(click, secret):
    now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    clicks = [
        factories.ClickFactory(
            offer=click.offer, affiliate=click.affiliate, created_at=now - timedelta(minutes=10)
        )
        for _ in range(2)
    ]
    with time_machine.travel(now, tick=False):
        for skew, each in zip([300, -300], clicks, strict=True):
            response = signed_get(
                Client(), secret, {"click_id": each.click_id}, ts=int(now.timestamp()) - skew
            )
            assert response.json()["result"] == "accepted", skew
    assert Conversion.objects.count() == 2


@pytest.mark.parametrize(
    "ts", ["", "abc", "1.5e9", "-5", "²", "\u0661\u0667" + "\u0660" * 8, "9" * 13]
)
def test_unreadable_timestamp(client, click, secret, ts):
    query = urlencode({"click_id": click.click_id})
    _rejected(
        client.get(f"/postback?{query}", headers=_headers("v1=" + "a" * 64, ts)),
        "bad_signature_timestamp",
    )


def test_timestamp_without_a_signature(client, click, secret):
    query = urlencode({"click_id": click.click_id, "token": TOKEN})
    _rejected(
        client.get(f"/postback?{query}", headers=_headers(None, int(time.time()))),
        "bad_signature",
    )


def test_required_signature_missing(client, click, secret):
    advertiser = click.offer.advertiser
    advertiser.require_signature = True
    advertiser.save()
    # The right token does not stand in for a required signature.
    _rejected(
        client.get("/postback", {"click_id": click.click_id, "token": TOKEN}), "signature_required"
    )


def test_signature_sent_but_the_advertiser_has_no_secret(client, click):
    assert click.offer.advertiser.signing_secret_encrypted == ""
    _rejected(
        signed_get(client, "whsec_guess", {"click_id": click.click_id, "token": TOKEN}),
        "signing_not_configured",
    )


def test_a_secret_that_can_no_longer_be_decrypted(client, click, secret, settings):
    settings.FIELD_ENCRYPTION_KEY = "another key entirely"
    _rejected(signed_get(client, secret, {"click_id": click.click_id}), "signing_not_configured")


def _click_like(click):
    return factories.ClickFactory(offer=click.offer, affiliate=click.affiliate)


def test_the_old_secret_keeps_working_for_the_overlap_then_stops(client, click, secret, settings):
    assert settings.ADVERTISER_SIGNING_SECRET_OVERLAP_HOURS == 24
    rotated_at = datetime.now(UTC)
    new = advertiser_rotate_signing_secret(advertiser=click.offer.advertiser, now=rotated_at)
    advertiser = Advertiser.objects.get(pk=click.offer.advertiser_id)
    assert advertiser.previous_signing_secret_expires_at == rotated_at + timedelta(hours=24)
    assert advertiser.previous_signing_secret_prefix == secret[:12]

    # During the overlap: the old secret and the new one are both accepted.
    for signing_with, each in ((secret, click), (new, _click_like(click))):
        response = signed_get(client, signing_with, {"click_id": each.click_id})
        assert response.json()["result"] == "accepted", response.content

    # After it: only the new one.
    later = rotated_at + timedelta(hours=24, seconds=1)
    with time_machine.travel(later, tick=False):
        response = signed_get(Client(), secret, {"click_id": _click_like(click).click_id})
        assert response.json()["reason"] == "bad_signature"
        response = signed_get(Client(), new, {"click_id": _click_like(click).click_id})
        assert response.json()["result"] == "accepted"


def test_with_no_overlap_the_old_secret_stops_at_once(client, click, secret):
    advertiser_rotate_signing_secret(advertiser=click.offer.advertiser, overlap_hours=0)
    _rejected(signed_get(client, secret, {"click_id": click.click_id}), "bad_signature")


def test_a_second_rotation_keeps_only_the_secret_it_replaced(client, click, secret):
    second = advertiser_rotate_signing_secret(advertiser=click.offer.advertiser)
    third = advertiser_rotate_signing_secret(advertiser=click.offer.advertiser)
    _rejected(signed_get(client, secret, {"click_id": click.click_id}), "bad_signature")
    InboundPostbackLog.objects.all().delete()
    for signing_with in (second, third):
        response = signed_get(client, signing_with, {"click_id": _click_like(click).click_id})
        assert response.json()["result"] == "accepted"


def test_either_secret_among_several_offered_signatures(click, secret):
    """While the advertiser rolls the new secret out it may sign with both; each offered value is
    compared with each valid secret's signature."""
    new = advertiser_rotate_signing_secret(advertiser=click.offer.advertiser)
    advertiser = Advertiser.objects.get(pk=click.offer.advertiser_id)
    now = datetime.now(UTC)
    ts = str(int(now.timestamp()))
    query = f"click_id={click.click_id}"

    def check(header: str) -> bool:
        return advertiser_signature_check(
            advertiser=advertiser,
            method="GET",
            path="/postback",
            query_string=query,
            headers={"x-opencpa-timestamp": ts, "x-opencpa-signature": header},
            body=b"",
            now=now,
        )

    by_old = _sign(secret, ts=int(ts), method="GET", path="/postback", query=query)
    by_new = _sign(new, ts=int(ts), method="GET", path="/postback", query=query)
    junk = "v1=" + "0" * 64
    for header in (by_old, by_new, f"{junk},{by_old}", f"{by_new}, {by_old}", f"{junk},{by_new}"):
        assert check(header) is True, header
    with pytest.raises(SignatureRejected):
        check(junk)


def test_an_unreadable_previous_secret_does_not_break_the_current_one(client, click, secret):
    new = advertiser_rotate_signing_secret(advertiser=click.offer.advertiser)
    Advertiser.objects.filter(pk=click.offer.advertiser_id).update(
        previous_signing_secret_encrypted="not-a-token"
    )
    response = signed_get(client, new, {"click_id": click.click_id})
    assert response.json()["result"] == "accepted"


def test_an_unsigned_postback_still_works_when_signing_is_optional(client, click, secret):
    response = client.get("/postback", {"click_id": click.click_id, "token": TOKEN})
    assert response.json()["result"] == "accepted"
    assert "x-opencpa-signature" not in InboundPostbackLog.objects.get().headers


def test_ip_allowlist_is_still_checked_for_signed_postbacks(client, click, secret):
    advertiser = click.offer.advertiser
    advertiser.ip_allowlist = ["203.0.113.0/24"]
    advertiser.save()
    _rejected(signed_get(client, secret, {"click_id": click.click_id}), "ip_not_allowed")


# --- the signing module itself --------------------------------------------------------------------


def test_signing_message_layout():
    assert (
        signing_message(
            timestamp="1700000000",
            method="post",
            path="/postback",
            query_string="a=1&b=2",
            body=b'{"x": 1}',
        )
        == b'1700000000\nPOST\n/postback\na=1&b=2\n{"x": 1}'
    )
    expected = hmac.new(b"k", b"1\nGET\n/p\n\n", hashlib.sha256).hexdigest()
    assert signature_compute(secret="k", message=b"1\nGET\n/p\n\n") == f"v1={expected}"


def test_check_returns_false_for_an_unsigned_request_when_optional(advertiser):
    now = datetime.now(UTC)
    assert (
        advertiser_signature_check(
            advertiser=advertiser,
            method="GET",
            path="/postback",
            query_string="",
            headers={},
            body=b"",
            now=now,
        )
        is False
    )
    advertiser.require_signature = True
    with pytest.raises(SignatureRejected) as rejected:
        advertiser_signature_check(
            advertiser=advertiser,
            method="GET",
            path="/postback",
            query_string="",
            headers={},
            body=b"",
            now=now,
        )
    assert (rejected.value.code, rejected.value.http_status) == ("signature_required", 403)


def test_the_secret_is_stored_encrypted_and_shown_once(advertiser):
    plain = advertiser_rotate_signing_secret(advertiser=advertiser)
    advertiser.refresh_from_db()
    assert plain.startswith("whsec_") and len(plain) > 40
    assert plain not in advertiser.signing_secret_encrypted
    assert secret_decrypt(advertiser.signing_secret_encrypted) == plain
    assert advertiser.signing_secret_prefix == plain[:12]
    assert advertiser_rotate_signing_secret(advertiser=advertiser) != plain


# --- the admin: rotate, require -------------------------------------------------------------------


def _superuser_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser(username="root", password="root-pw-12345"))
    return client


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _rotate(client: Client, *advertisers: Advertiser):
    return client.post(
        reverse("admin:advertisers_advertiser_changelist"),
        {"action": "rotate_signing_secret", "_selected_action": [a.pk for a in advertisers]},
        follow=True,
    )


def test_staff_rotate_the_signing_secret_and_see_it_once(advertiser):
    client = _superuser_client()
    response = _rotate(client, advertiser)

    assert response.status_code == 200
    advertiser.refresh_from_db()
    plain = secret_decrypt(advertiser.signing_secret_encrypted)
    shown = _messages(response)
    assert len(shown) == 1
    assert plain in shown[0]
    # Never again: not on the change page, not in the list.
    page = client.get(reverse("admin:advertisers_advertiser_change", args=[advertiser.pk]))
    assert plain not in page.content.decode()
    assert advertiser.signing_secret_prefix in page.content.decode()
    assert (
        plain not in client.get(reverse("admin:advertisers_advertiser_changelist")).content.decode()
    )


def test_staff_turn_require_signature_on(advertiser):
    client = _superuser_client()
    url = reverse("admin:advertisers_advertiser_change", args=[advertiser.pk])
    data = admin_form_data(client.get(url))
    assert "require_signature" not in data  # unchecked
    data["require_signature"] = "on"
    response = client.post(url, data)
    assert response.status_code == 302, response.content
    advertiser.refresh_from_db()
    assert advertiser.require_signature is True


@pytest.fixture
def own_client(advertiser) -> Client:
    user = advertiser_user_create(
        username="adv-user", password="adv-password-123", advertiser_id=advertiser.pk
    )
    client = Client()
    client.force_login(user)
    return client


def test_an_advertiser_user_rotates_its_own_secret_and_sees_it_once(advertiser, own_client):
    old = advertiser_rotate_signing_secret(advertiser=advertiser)
    response = own_client.post(
        reverse("admin:advertisers_advertiser_changelist"),
        {"action": "rotate_signing_secret", "_selected_action": [advertiser.pk]},
        follow=True,
    )
    assert response.status_code == 200
    advertiser.refresh_from_db()
    plain = secret_decrypt(advertiser.signing_secret_encrypted)
    [shown] = _messages(response)
    assert plain in shown
    assert "the previous one keeps working until " in shown
    assert secret_decrypt(advertiser.previous_signing_secret_encrypted) == old
    page = own_client.get(reverse("admin:advertisers_advertiser_change", args=[advertiser.pk]))
    assert page.status_code == 200
    assert plain not in page.content.decode()


def test_an_advertiser_user_sees_only_its_own_advertiser_and_only_the_rotate_action(
    advertiser, own_client
):
    other = factories.AdvertiserFactory(name="Someone Else")
    changelist = own_client.get(reverse("admin:advertisers_advertiser_changelist"))
    assert changelist.status_code == 200
    assert [a.pk for a in changelist.context["cl"].result_list] == [advertiser.pk]
    actions = [name for name, _ in changelist.context["action_form"].fields["action"].choices]
    assert actions == ["", "rotate_signing_secret"]
    other_page = own_client.get(reverse("admin:advertisers_advertiser_change", args=[other.pk]))
    assert other_page.status_code == 302  # "doesn't exist" back to the index, nothing shown
    assert "Someone Else" not in own_client.get(reverse("admin:index")).content.decode()


def test_an_advertiser_user_cannot_rotate_another_advertisers_secret(advertiser, own_client):
    other = factories.AdvertiserFactory(name="Someone Else")
    own_client.post(
        reverse("admin:advertisers_advertiser_changelist"),
        {"action": "rotate_signing_secret", "_selected_action": [other.pk]},
    )
    other.refresh_from_db()
    assert other.signing_secret_encrypted == ""


def test_an_advertiser_user_cannot_change_its_advertiser_or_its_token(advertiser, own_client):
    before = (advertiser.name, advertiser.scrub_window_days, advertiser.postback_token_hash)
    url = reverse("admin:advertisers_advertiser_change", args=[advertiser.pk])
    response = own_client.post(
        url, {"name": "Renamed", "status": "active", "scrub_window_days": 365, "ip_allowlist": ""}
    )
    assert response.status_code == 403
    response = own_client.post(
        reverse("admin:advertisers_advertiser_changelist"),
        {"action": "rotate_postback_token", "_selected_action": [advertiser.pk]},
    )
    advertiser.refresh_from_db()
    assert (advertiser.name, advertiser.scrub_window_days, advertiser.postback_token_hash) == before
