"""The whole loop, for real: HTTP server, Celery worker process, PostgreSQL, Redis, and a local
receiver standing in for the affiliate's tracker."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from apps.commissions.models import EntryKind, LedgerEntry
from apps.conversions.models import Conversion, InboundPostbackLog, OutboundPostbackDelivery
from apps.tracking.models import Click
from tests import factories
from tests.workers import celery_worker_start, celery_worker_stop

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

BROWSER_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15"
)


class _Receiver(BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[str]]]:
    handler = type("Receiver", (_Receiver,), {"hits": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", handler.hits
    server.shutdown()


@pytest.fixture
def celery_worker_process(live_server, tmp_path) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker process on the test database, allowed to call the loopback receiver, with
    beat inside it draining the click buffer as in production."""
    worker = celery_worker_start(
        queues="default,clicks,postbacks,commissions",
        log_path=tmp_path / "worker.log",
        beat_schedule=tmp_path / "celerybeat-schedule",
        OUTBOUND_ALLOW_LOOPBACK="1",
    )
    yield worker
    celery_worker_stop(worker)


def _wait_for(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError("timed out waiting for the worker")


def test_click_postback_outbound_commission_stats(
    live_server, receiver, celery_worker_process, settings
):
    receiver_url, hits = receiver
    settings.TRACKING_BASE_URL = live_server.url
    settings.OUTBOUND_ALLOW_LOOPBACK = True  # the API must accept the local receiver's URL
    offer = factories.OfferFactory(destination_url="https://shop.example.com/?cid={click_id}")
    factories.GoalFactory(offer=offer, code="lead", payout=Decimal("3.10"))
    affiliate = factories.AffiliateFactory()
    factories.OfferAccessFactory(offer=offer, affiliate=affiliate)
    user = factories.UserFactory(affiliate=affiliate)
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {factories.api_key_for(user)}"

    # The affiliate sets its postback URL and pulls its tracking link over the API.
    created = api.post(
        f"{live_server.url}/api/v1/affiliate/postbacks/",
        json={"url": f"{receiver_url}/pb?cid={{aff_click_id}}&payout={{payout}}&st={{status}}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    offers = api.get(f"{live_server.url}/api/v1/affiliate/offers/", timeout=10).json()
    link = offers["results"][0]["tracking_link"]

    # A shopper clicks.
    click = requests.get(
        f"{link}&sub1=summer&aff_click_id=their-123",
        allow_redirects=False,
        timeout=10,
        headers={"User-Agent": BROWSER_UA},
    )
    assert click.status_code == 302
    location = urlsplit(click.headers["Location"])
    assert location.netloc == "shop.example.com"
    click_id = parse_qs(location.query)["cid"][0]
    assert click.cookies["ocpa_cid"] == click_id

    # The advertiser's server reports the lead.
    answer = requests.get(
        f"{live_server.url}/postback",
        params={"click_id": click_id, "order_id": "L-1", "token": factories.ADVERTISER_TOKEN},
        timeout=10,
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["result"] == "accepted"
    assert body["status"] == "approved"
    conversion = Conversion.objects.get(pk=body["conversion_id"])
    assert conversion.payout == Decimal("3.10")
    assert InboundPostbackLog.objects.filter(conversion=conversion, result="accepted").count() == 1

    # The worker tells the affiliate's tracker and accrues the commission.
    _wait_for(lambda: hits)
    assert hits == ["/pb?cid=their-123&payout=3.10&st=approved"]
    delivery = _wait_for(
        lambda: OutboundPostbackDelivery.objects.filter(conversion=conversion).first()
    )
    assert delivery.succeeded and delivery.http_status == 200 and delivery.attempt == 1
    entry = _wait_for(lambda: LedgerEntry.objects.filter(conversion=conversion).first())
    assert (entry.kind, entry.amount, entry.currency) == (
        EntryKind.COMMISSION,
        Decimal("3.10"),
        "USD",
    )

    # The affiliate sees it all in stats and balance, once beat's drain has moved the click.
    _wait_for(lambda: Click.objects.filter(click_id=click_id).exists())
    stats = api.get(f"{live_server.url}/api/v1/affiliate/stats/", timeout=10).json()
    assert stats["totals"] == [
        {
            "currency": "USD",
            "clicks": 1,
            "unique_clicks": 1,
            "conversions": 1,
            "pending": 0,
            "rejected": 0,
            "payout": "3.10",
            "cr": "100.00",
            "epc": "3.1000",
        }
    ]
    balance = api.get(f"{live_server.url}/api/v1/affiliate/balance/", timeout=10).json()
    assert balance == {"balances": [{"currency": "USD", "amount": "3.10"}]}


def test_fifty_identical_postbacks_at_once_make_one_conversion(live_server):
    goal = factories.GoalFactory(code="lead")
    click = factories.ClickFactory(offer=goal.offer)
    url = f"{live_server.url}/postback"
    params = {"click_id": click.click_id, "order_id": "same", "token": factories.ADVERTISER_TOKEN}

    def fire(_: int) -> dict:
        response = requests.get(url, params=params, timeout=30)
        assert response.status_code == 200
        return response.json()

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(fire, range(50)))

    assert Conversion.objects.count() == 1
    conversion = Conversion.objects.get()
    assert sorted(a["result"] for a in answers) == ["accepted"] + ["duplicate"] * 49
    assert {a["conversion_id"] for a in answers} == {conversion.pk}
    assert InboundPostbackLog.objects.count() == 50
