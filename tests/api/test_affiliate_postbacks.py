"""Affiliate postbacks over the API beyond create/list/delete: delivery options, pause state,
resume, backfill, test fire, resending a conversion's postbacks, signing keys. Each endpoint is
checked for isolation (another affiliate's object is a 404 and stays untouched)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from apps.common.redis import redis_client
from apps.conversions import outbound
from apps.conversions.models import OutboundPostbackDelivery, PostbackOutbox
from apps.partners.models import AffiliatePostback, AffiliateSigningKey
from apps.partners.services import signing_secrets_active
from tests import factories

from .conftest import World

URL = "/api/v1/affiliate/postbacks/"
REFUSED = {"result": "refused", "http_status": None, "latency_ms": None}


def _pb(world: World, key: str = "a") -> str:
    return f"{URL}{world.postbacks[key].pk}/"


@pytest.fixture
def receiver(settings) -> Iterator[tuple[str, list[str]]]:
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", hits
    server.shutdown()
    server.server_close()


# --- create and read ------------------------------------------------------------------------------


def test_create_with_delivery_options(world: World):
    response = world.client_a.post(
        URL,
        {
            "url": "https://tracker.example.net/pb",
            "http_method": "POST",
            "fire_on_reversal": True,
            "sign": True,
            "paused_at": "2024-01-01T00:00:00Z",  # read-only: ignored
            "pause_reason": "x",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    created = AffiliatePostback.objects.get(pk=body["id"])
    assert (created.http_method, created.fire_on_reversal, created.sign) == ("POST", True, True)
    assert (created.paused_at, created.pause_reason) == (None, "")
    assert body == {
        "id": created.pk,
        "url": "https://tracker.example.net/pb",
        "offer_id": None,
        "goal_id": None,
        "http_method": "POST",
        "fire_on_pending": False,
        "fire_on_reversal": True,
        "sign": True,
        "is_active": True,
        "paused_at": None,
        "pause_reason": "",
        "resumed_at": None,
        "created_at": body["created_at"],
    }


def test_unknown_http_method_is_refused(world: World):
    response = world.client_a.post(
        URL, {"url": "https://tracker.example.net/pb", "http_method": "PUT"}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["http_method"]


def test_the_affiliate_sees_why_a_postback_was_paused(world: World):
    outbound.postback_pause(
        postback_id=world.postbacks["a"].pk,
        reason="No successful delivery since …",
        now=timezone.now(),
    )
    body = world.client_a.get(_pb(world)).json()
    assert body["paused_at"] is not None
    assert body["pause_reason"] == "No successful delivery since …"


# --- resume -------------------------------------------------------------------------------------


def test_resume_clears_the_pause_and_requeues_held_rows(world: World):
    postback = world.postbacks["a"]
    outbound.outbox_write(conversion=world.conversions["a1"], now=timezone.now())
    outbound.postback_pause(postback_id=postback.pk, reason="failing", now=timezone.now())

    response = world.client_a.post(_pb(world) + "resume/")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["requeued"] == 1
    assert (body["postback"]["id"], body["postback"]["paused_at"]) == (postback.pk, None)
    postback.refresh_from_db()
    assert postback.paused_at is None
    assert body["postback"]["resumed_at"] == postback.resumed_at.isoformat().replace("+00:00", "Z")
    assert PostbackOutbox.objects.get().state == "pending"


def test_resume_of_another_affiliates_postback_is_404(world: World):
    other = world.postbacks["b"]
    outbound.postback_pause(postback_id=other.pk, reason="failing", now=timezone.now())
    response = world.client_a.post(_pb(world, "b") + "resume/")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    other.refresh_from_db()
    assert other.paused_at is not None


# --- backfill -----------------------------------------------------------------------------------


def test_backfill_queues_recent_conversions_in_scope(
    world: World, django_capture_on_commit_callbacks
):
    click = factories.ClickFactory(offer=world.offers["x_approved"], affiliate=world.aff_a)
    recent = factories.ConversionFactory(
        click=click, goal=world.goals["x_approved"], created_at=timezone.now() - timedelta(days=2)
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = world.client_a.post(_pb(world) + "backfill/", {}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"queued": 1}  # a1 (May 2024) is too old
    assert list(PostbackOutbox.objects.values_list("conversion_id", flat=True)) == [recent.pk]
    assert redis_client().llen("postbacks") == 1


@pytest.mark.parametrize("days", [0, 31, "x", None])
def test_backfill_days_are_bounded(world: World, days):
    response = world.client_a.post(_pb(world) + "backfill/", {"days": days}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_backfill_of_a_paused_postback_is_409(world: World):
    outbound.postback_pause(postback_id=world.postbacks["a"].pk, reason="x", now=timezone.now())
    response = world.client_a.post(_pb(world) + "backfill/", {"days": 3}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "postback_paused")


def test_backfill_of_another_affiliates_postback_is_404(world: World):
    response = world.client_a.post(_pb(world, "b") + "backfill/", {}, format="json")
    assert response.status_code == 404
    assert PostbackOutbox.objects.count() == 0


# --- test fire ----------------------------------------------------------------------------------


def test_test_fire_calls_the_url_and_reports_status_and_latency(world: World, receiver):
    base, hits = receiver
    postback = factories.AffiliatePostbackFactory(
        affiliate=world.aff_a, url=base + "/pb?cid={click_id}&st={status}"
    )
    response = world.client_a.post(f"{URL}{postback.pk}/test/")
    assert response.status_code == 200
    body = response.json()
    assert (body["result"], body["http_status"]) == ("delivered", 204)
    assert isinstance(body["latency_ms"], int)
    assert hits == ["/pb?cid=test0000000000000000000000&st=approved"]
    assert OutboundPostbackDelivery.objects.get().is_test is True


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/pb",
        "http://10.0.0.7/pb",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://localhost/",
        "http://nowhere.invalid/",
        "ftp://tracker.example.net/",
    ],
)
def test_test_fire_of_a_refused_url_says_only_refused(world: World, settings, url):
    """URLs saved before a rule existed, or whose DNS changed since: one answer for all of them,
    with nothing about the address, its kind, or why."""
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    postback = factories.AffiliatePostbackFactory(affiliate=world.aff_a, url=url)
    response = world.client_a.post(f"{URL}{postback.pk}/test/")
    assert response.status_code == 200
    assert response.json() == REFUSED


def test_test_fire_after_dns_rebinding_says_only_refused(world: World, settings, monkeypatch):
    from apps.common import safe_http

    settings.OUTBOUND_ALLOW_LOOPBACK = False
    real = socket.getaddrinfo
    answers = [["93.184.215.14"], ["127.0.0.1"]]

    def getaddrinfo(host, port, *args, **kwargs):
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        address = answers.pop(0) if len(answers) > 1 else answers[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in address]

    monkeypatch.setattr(safe_http.socket, "getaddrinfo", getaddrinfo)
    created = world.client_a.post(URL, {"url": "http://rebind.test/pb"}, format="json")
    assert created.status_code == 201
    response = world.client_a.post(f"{URL}{created.json()['id']}/test/")
    assert response.json() == REFUSED


def test_test_fire_is_rate_limited_per_affiliate_with_429(
    world: World, receiver, settings, top_of_a_minute
):
    settings.OUTBOUND_TEST_FIRE_PER_MINUTE = 2
    base, hits = receiver
    postback = factories.AffiliatePostbackFactory(affiliate=world.aff_a, url=base + "/pb")
    for _ in range(2):
        assert world.client_a.post(f"{URL}{postback.pk}/test/").status_code == 200

    response = world.client_a.post(f"{URL}{postback.pk}/test/")

    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "rate_limited"
    assert body["detail"].startswith("at most 2 test fires a minute; try again in ")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert len(hits) == 2  # nothing called
    # B's budget is its own.
    theirs = factories.AffiliatePostbackFactory(affiliate=world.aff_b, url=base + "/b")
    assert world.client_b.post(f"{URL}{theirs.pk}/test/").status_code == 200


def test_the_429_is_the_same_for_a_refused_target(world: World, settings, top_of_a_minute):
    """Once the budget is spent every fire gets the same 429, so the limit reveals nothing about
    which targets we refuse (and a refused fire counts like any other)."""
    settings.OUTBOUND_TEST_FIRE_PER_MINUTE = 1
    refused = factories.AffiliatePostbackFactory(affiliate=world.aff_a, url="http://10.0.0.7/pb")
    fine = factories.AffiliatePostbackFactory(
        affiliate=world.aff_a, url="https://tracker.example.net/pb"
    )
    assert world.client_a.post(f"{URL}{refused.pk}/test/").json() == REFUSED
    answers = [world.client_a.post(f"{URL}{pb.pk}/test/") for pb in (refused, fine)]
    assert [a.status_code for a in answers] == [429, 429]
    assert answers[0].json()["code"] == answers[1].json()["code"] == "rate_limited"
    assert OutboundPostbackDelivery.objects.count() == 1


def test_test_fire_of_another_affiliates_postback_is_404_and_calls_nothing(world: World, receiver):
    base, hits = receiver
    theirs = factories.AffiliatePostbackFactory(affiliate=world.aff_b, url=base + "/pb")
    response = world.client_a.post(f"{URL}{theirs.pk}/test/")
    assert response.status_code == 404
    assert hits == []


# --- resend one conversion's postbacks ----------------------------------------------------------


def test_resend_for_own_conversion(world: World):
    conversion = world.conversions["a1"]
    url = f"/api/v1/affiliate/conversions/{conversion.pk}/resend-postbacks/"
    response = world.client_a.post(url)
    assert response.status_code == 200, response.json()
    assert response.json() == {"queued": 1, "already_delivered": 0, "skipped": 0}
    row = PostbackOutbox.objects.get()
    assert (row.conversion, row.postback) == (conversion, world.postbacks["a"])

    # Delivered already: the affiliate asked, so it goes out again, as a new event.
    PostbackOutbox.objects.update(state="delivered")
    response = world.client_a.post(url)
    assert response.json() == {"queued": 1, "already_delivered": 1, "skipped": 0}
    resend = PostbackOutbox.objects.get(resend_number=1)
    assert (resend.conversion, resend.postback, resend.state) == (
        conversion,
        world.postbacks["a"],
        "pending",
    )
    assert resend.requested_by.affiliate == world.aff_a
    # Asked again before it went out: the same resend, not another one.
    assert world.client_a.post(url).json() == {"queued": 1, "already_delivered": 0, "skipped": 0}
    assert PostbackOutbox.objects.count() == 2


def test_resend_says_what_a_paused_postback_held_back(world: World):
    conversion = world.conversions["a1"]
    outbound.postback_pause(postback_id=world.postbacks["a"].pk, reason="x", now=timezone.now())
    url = f"/api/v1/affiliate/conversions/{conversion.pk}/resend-postbacks/"
    assert world.client_a.post(url).json() == {"queued": 0, "already_delivered": 0, "skipped": 1}
    row = PostbackOutbox.objects.get()
    assert (row.state, row.last_error) == ("cancelled", outbound.PAUSED_NOTE)  # kept for resume


def test_resend_for_another_affiliates_conversion_is_404(world: World):
    url = f"/api/v1/affiliate/conversions/{world.conversions['b1'].pk}/resend-postbacks/"
    response = world.client_a.post(url)
    assert (response.status_code, response.json()["code"]) == (404, "conversion_not_found")
    assert PostbackOutbox.objects.count() == 0


def test_resends_are_rate_limited_per_affiliate_with_429(world: World, settings, top_of_a_minute):
    """Each resend calls URLs the affiliate chose: a budget per affiliate and minute, whatever
    the conversion (another affiliate's counts too, and gets no further than the 429)."""
    settings.OUTBOUND_RESEND_PER_MINUTE = 2
    url = f"/api/v1/affiliate/conversions/{world.conversions['a1'].pk}/resend-postbacks/"
    assert world.client_a.post(url).status_code == 200
    theirs = f"/api/v1/affiliate/conversions/{world.conversions['b1'].pk}/resend-postbacks/"
    assert world.client_a.post(theirs).status_code == 404

    response = world.client_a.post(url)

    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "rate_limited"
    assert body["detail"].startswith("at most 2 resends a minute; try again in ")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert PostbackOutbox.objects.count() == 1  # only the first resend wrote a row
    # B's budget is its own.
    assert world.client_b.post(theirs).status_code == 200


# --- signing keys -------------------------------------------------------------------------------

KEYS = "/api/v1/affiliate/signing-keys/"


def test_signing_key_is_shown_once_and_rotation_keeps_the_old_one_for_a_while(world: World):
    first = world.client_a.post(KEYS, {}, format="json")
    assert first.status_code == 201, first.json()
    secret = first.json()["secret"]
    assert secret.startswith("whsec_")
    assert first.json()["prefix"] == secret[:12]

    listed = world.client_a.get(KEYS).json()["results"]
    assert listed == [
        {
            "id": first.json()["id"],
            "prefix": secret[:12],
            "created_at": first.json()["created_at"],
            "expires_at": None,
        }
    ]
    assert secret not in str(listed)

    second = world.client_a.post(KEYS, {"overlap_hours": 2}, format="json").json()
    old = AffiliateSigningKey.objects.get(pk=first.json()["id"])
    assert old.expires_at is not None
    assert timedelta(hours=1) < old.expires_at - timezone.now() <= timedelta(hours=2)
    assert signing_secrets_active(affiliate_id=world.aff_a.pk, now=timezone.now()) == [
        second["secret"],
        secret,
    ]


def test_signing_keys_are_per_affiliate(world: World):
    world.client_a.post(KEYS, {}, format="json")
    assert world.client_b.get(KEYS).json()["results"] == []


@pytest.mark.parametrize("hours", [-1, 24 * 15, "x"])
def test_signing_key_overlap_is_bounded(world: World, hours):
    response = world.client_a.post(KEYS, {"overlap_hours": hours}, format="json")
    assert response.status_code == 400
    assert AffiliateSigningKey.objects.count() == 0


# --- roles and robustness -----------------------------------------------------------------------

ENDPOINTS = [
    "/api/v1/affiliate/postbacks/{pb}/resume/",
    "/api/v1/affiliate/postbacks/{pb}/backfill/",
    "/api/v1/affiliate/postbacks/{pb}/test/",
    "/api/v1/affiliate/conversions/{conv}/resend-postbacks/",
    "/api/v1/affiliate/signing-keys/",
]


@pytest.mark.parametrize("template", ENDPOINTS)
def test_only_affiliates_may_call(world: World, template: str):
    url = template.format(pb=world.postbacks["a"].pk, conv=world.conversions["a1"].pk)
    for client in (world.client_x, world.client_staff):
        response = client.post(url, {}, format="json")
        assert response.status_code == 403, url
    assert AffiliateSigningKey.objects.count() == 0
    assert PostbackOutbox.objects.count() == 0


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete", "options", "head"])
def test_every_method_is_never_500(world: World, method: str):
    for client in (world.client_a, world.client_b, world.client_x, world.client_staff):
        for template in ENDPOINTS:
            url = template.format(pb=world.postbacks["a"].pk, conv=world.conversions["a1"].pk)
            response = getattr(client, method)(url, {"junk": "x"} if method != "get" else None)
            assert response.status_code < 500, (method, url)
            if response.status_code >= 400 and method != "head":
                assert response.json()["code"], (method, url)


@pytest.mark.parametrize("pk", ["abc", "0", "-1", "99999999999999999999999"])
def test_odd_ids_are_404(world: World, pk: str):
    for url in (f"{URL}{pk}/resume/", f"/api/v1/affiliate/conversions/{pk}/resend-postbacks/"):
        response = world.client_a.post(url)
        assert response.status_code == 404, url
        assert response.json()["code"]
