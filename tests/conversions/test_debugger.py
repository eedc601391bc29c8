"""The postback debugger's record of each call: the raw request (method, path, parameters,
headers, body) with secrets masked and sizes bounded, next to the decision."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest

from apps.conversions.models import Conversion, InboundPostbackLog
from apps.conversions.params import MAX_LOGGED_BODY, body_for_log, headers_for_log
from tests import factories

pytestmark = pytest.mark.django_db

TOKEN = factories.ADVERTISER_TOKEN


def test_get_postback_headers_are_kept_and_body_is_empty(client, click):
    client.get(
        "/postback",
        {"click_id": click.click_id, "token": TOKEN},
        headers={"User-Agent": "Advertiser-CRM/2.1", "X-Unrelated": "dropped"},
        REMOTE_ADDR="127.0.0.1",
        HTTP_X_FORWARDED_FOR="203.0.113.9",
    )
    log = InboundPostbackLog.objects.get()
    assert log.headers == {"user-agent": "Advertiser-CRM/2.1", "x-forwarded-for": "203.0.113.9"}
    assert log.body == ""


def test_form_body_is_shown_as_sent_with_the_token_masked(client, click):
    body = urlencode({"click_id": click.click_id, "order_id": "F-1", "token": TOKEN})
    client.post("/postback", body, content_type="application/x-www-form-urlencoded")
    log = InboundPostbackLog.objects.get()
    assert log.body == f"click_id={click.click_id}&order_id=F-1&token=***"
    assert log.headers["content-type"] == "application/x-www-form-urlencoded"
    assert log.headers["content-length"] == str(len(body))
    assert log.result == "accepted"


def test_json_body_is_shown_as_sent_with_secrets_masked(client, click):
    body = (
        f'{{"click_id": "{click.click_id}",\n "amount": 10.50,\n'
        f' "verification_token": "{TOKEN}", "lead": {{"email": "a@b.example"}}}}'
    )
    client.post("/postback", body, content_type="application/json")
    log = InboundPostbackLog.objects.get()
    # The layout and the number's digits are the ones sent; only the secrets changed.
    assert log.body == (
        f'{{"click_id": "{click.click_id}",\n "amount": 10.50,\n'
        ' "verification_token": "***", "lead": {"email": "***"}}'
    )
    assert TOKEN not in log.body


def test_multipart_body_masks_the_token_part(client, click):
    client.post("/postback", {"click_id": click.click_id, "token": TOKEN, "order_id": "M-1"})
    log = InboundPostbackLog.objects.get()
    assert log.result == "accepted"
    assert TOKEN not in log.body
    assert 'name="token"\r\n\r\n***\r\n' in log.body
    assert f'name="click_id"\r\n\r\n{click.click_id}\r\n' in log.body


def test_malformed_json_is_logged_with_its_body(client, click):
    body = f'{{"click_id": "{click.click_id}", "token": "{TOKEN}", '
    response = client.post("/postback", body, content_type="application/json")
    assert response.status_code == 400
    log = InboundPostbackLog.objects.get()
    assert (log.reason, log.body) == (
        "malformed_request",
        f'{{"click_id": "{click.click_id}", "token": "***", ',
    )
    assert log.headers["content-type"] == "application/json"


def test_long_body_is_cut(client, click):
    body = json.dumps({"click_id": click.click_id, "token": TOKEN, "pad": "p" * 20_000})
    client.post("/postback", body, content_type="application/json")
    log = InboundPostbackLog.objects.get()
    assert log.result == "accepted"
    assert len(log.body) < MAX_LOGGED_BODY + 40
    assert log.body.endswith(f"… ({len(body)} bytes in all)")
    assert TOKEN not in log.body


def test_signature_header_presence_only(client, click):
    client.get(
        "/postback",
        {"click_id": click.click_id, "token": TOKEN},
        headers={"X-OpenCPA-Timestamp": str(int(time.time())), "X-OpenCPA-Signature": "v1=ab"},
    )
    log = InboundPostbackLog.objects.get()
    assert log.reason == "signing_not_configured"
    assert log.headers["x-opencpa-signature"] == "***"
    assert "v1=ab" not in json.dumps(log.headers)


def test_an_accepted_postback_links_its_conversion(client, click):
    client.get("/postback", {"click_id": click.click_id, "token": TOKEN})
    assert InboundPostbackLog.objects.get().conversion == Conversion.objects.get()


# --- body_for_log / headers_for_log ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "shown"),
    [
        (b"", "", ""),
        (b"a=1&token=s3cr3t&b=2", "", "a=1&token=***&b=2"),
        (b"a=1&%74oken=s3cr3t", "", "a=1&%74oken=***"),
        (b"SECURE=s3cr3t&api_secret=x", "", "SECURE=***&api_secret=***"),
        (b"email=a%40b.c&phone=%2B1", "", "email=***&phone=***"),
        (b'{"tok\\u0065n": "s3cr3t"}', "application/json", '{"tok\\u0065n": "***"}'),
        (b'{"token": 123456}', "application/json", '{"token": "***"}'),
        (b'{"token": {"nested": "s3cr3t"}}', "application/json", '{"token": "***"}'),
        (b'[{"secure": "s3cr3t"}]', "application/json", '[{"secure": "***"}]'),
        (b'{"token": "s3c', "application/json", '{"token": "***"'),
        (b'{"a": "x\\"token\\": \\"y"}', "application/json", '{"a": "x\\"token\\": \\"y"}'),
        (b"a\x00b\x01c\r\nd", "text/plain", "abc\r\nd"),
        (b"\xff\xfe", "", "\ufffd\ufffd"),
    ],
    ids=[
        "empty",
        "form",
        "form-encoded-name",
        "form-other-secrets",
        "form-pii",
        "json-escaped-key",
        "json-number",
        "json-object-value",
        "json-array",
        "json-cut",
        "json-secret-lookalike-in-a-value",
        "controls",
        "bad-utf8",
    ],
)
def test_body_for_log(body, content_type, shown):
    assert body_for_log(body, content_type=content_type) == shown


def test_body_for_log_multipart_cut_inside_a_secret():
    body = b'--xyz\r\nContent-Disposition: form-data; name="token"\r\n\r\ns3cr3t-and-more'
    shown = body_for_log(body, content_type="multipart/form-data; boundary=xyz")
    assert "s3cr3t" not in shown


@pytest.mark.parametrize(
    "body",
    [
        b'name="x"\n\n' * 6000,
        b'"' * 65_000,
        b'"a":"' * 13_000,
        b"a" * 65_000,
        b"[" * 65_000,
        b'{"a":' * 13_000,
    ],
    ids=["multipart-ish", "quotes", "json-pairs", "no-equals", "deep-array", "deep-object"],
)
@pytest.mark.parametrize(
    "content_type", ["", "application/json", "multipart/form-data; boundary=x"]
)
def test_body_for_log_is_fast_on_hostile_bodies(body, content_type):
    started = time.perf_counter()
    shown = body_for_log(body, content_type=content_type)
    assert time.perf_counter() - started < 0.5
    assert len(shown) <= MAX_LOGGED_BODY + 40


def test_headers_for_log_keeps_only_known_headers_and_masks_credentials():
    assert headers_for_log(
        {
            "user-agent": "ua\x00" + "x" * 1000,
            "x-opencpa-signature": "v1=abc",
            "x-opencpa-timestamp": "1700000000",
            "cookie": "sessionid=abc",
            "authorization": "Bearer abc",
        }
    ) == {
        "user-agent": "ua" + "x" * 510,
        "x-opencpa-timestamp": "1700000000",
        "x-opencpa-signature": "***",
    }
