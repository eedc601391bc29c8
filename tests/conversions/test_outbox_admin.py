"""The admin for affiliate postbacks and the outbox: forms with the SSRF rule, pause state and
resume, test fire, backfill, resend and cancel, signing keys shown once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.conversions import outbound
from apps.conversions.models import OutboundPostbackDelivery, PostbackOutbox
from apps.partners.admin import deliveries_resend
from apps.partners.models import AffiliatePostback, AffiliateSigningKey
from apps.partners.services import signing_secrets_active
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Client:
    User.objects.create_superuser(username="root", password="root-password-123")
    client = Client()
    assert client.login(username="root", password="root-password-123")
    return client


@pytest.fixture
def conversion(goal, affiliate):
    click = factories.ClickFactory(offer=goal.offer, affiliate=affiliate, click_id="clk-admin-1")
    return factories.ConversionFactory(click=click, goal=goal)


@pytest.fixture
def postback(conversion):
    return factories.AffiliatePostbackFactory(
        affiliate=conversion.affiliate, url="https://tracker.example.net/pb?c={click_id}"
    )


def _action(client: Client, url_name: str, action: str, ids: list[int]):
    return client.post(reverse(url_name), {"action": action, "_selected_action": ids}, follow=True)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- the postback form ----------------------------------------------------------------------------


def test_add_form_takes_the_delivery_options(staff, affiliate):
    response = staff.post(
        reverse("admin:partners_affiliatepostback_add"),
        {
            "affiliate": affiliate.pk,
            "url": "https://tracker.example.net/pb",
            "http_method": "POST",
            "fire_on_reversal": "on",
            "sign": "on",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    created = AffiliatePostback.objects.get()
    assert (created.http_method, created.fire_on_reversal, created.sign) == ("POST", True, True)


def test_add_form_without_a_method_means_get(staff, affiliate):
    response = staff.post(
        reverse("admin:partners_affiliatepostback_add"),
        {"affiliate": affiliate.pk, "url": "https://tracker.example.net/pb", "is_active": "on"},
    )
    assert response.status_code == 302
    assert AffiliatePostback.objects.get().http_method == "GET"


@pytest.mark.parametrize(
    "url",
    [
        "http://100.64.0.1/pb",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://017700000001/",
        "http://u:p@tracker.example.net/",
        "ftp://tracker.example.net/",
    ],
)
def test_add_form_refuses_unsafe_urls(staff, affiliate, url):
    response = staff.post(
        reverse("admin:partners_affiliatepostback_add"),
        {"affiliate": affiliate.pk, "url": url, "is_active": "on"},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["url"]
    assert not AffiliatePostback.objects.exists()


# --- pause, resume, test fire, backfill ---------------------------------------------------------


def test_paused_postbacks_show_and_can_be_resumed(staff, conversion, postback):
    outbound.outbox_write(conversion=conversion, now=timezone.now())
    outbound.postback_pause(
        postback_id=postback.pk, reason="failing for 3 days", now=timezone.now()
    )
    changelist = staff.get(
        reverse("admin:partners_affiliatepostback_changelist"), {"paused_at__isempty": "0"}
    )
    assert changelist.context["cl"].result_count == 1
    assert "failing for 3 days" in changelist.content.decode()

    response = _action(
        staff, "admin:partners_affiliatepostback_changelist", "resume", [postback.pk]
    )

    assert _messages(response) == ["Resumed 1 postback(s); 1 call(s) queued again."]
    postback.refresh_from_db()
    assert (postback.paused_at, postback.pause_reason) == (None, "")
    assert PostbackOutbox.objects.get().state == "pending"


def test_test_fire_action_reports_refused_for_a_private_target(staff, affiliate):
    postback = factories.AffiliatePostbackFactory(affiliate=affiliate, url="http://10.0.0.1/pb")
    response = _action(
        staff, "admin:partners_affiliatepostback_changelist", "test_fire", [postback.pk]
    )
    assert _messages(response) == [
        f"Postback {postback.pk}: refused, no answer (see the delivery log)."
    ]
    assert OutboundPostbackDelivery.objects.get().error == "refused: address_not_public"


def test_test_fire_action_is_rate_limited_per_affiliate(
    staff, affiliate, settings, top_of_a_minute
):
    settings.OUTBOUND_TEST_FIRE_PER_MINUTE = 1
    postbacks = [
        factories.AffiliatePostbackFactory(affiliate=affiliate, url="http://10.0.0.1/pb")
        for _ in range(2)
    ]
    response = _action(
        staff,
        "admin:partners_affiliatepostback_changelist",
        "test_fire",
        [p.pk for p in postbacks],
    )
    shown = _messages(response)
    assert len(shown) == 2
    assert sum(m.endswith(": refused, no answer (see the delivery log).") for m in shown) == 1
    assert sum(": not fired, at most 1 test fires a minute; try again in " in m for m in shown) == 1
    assert OutboundPostbackDelivery.objects.count() == 1


def test_resume_is_shown_on_the_postback(staff, conversion, postback):
    outbound.postback_pause(postback_id=postback.pk, reason="x", now=timezone.now())
    _action(staff, "admin:partners_affiliatepostback_changelist", "resume", [postback.pk])
    page = staff.get(reverse("admin:partners_affiliatepostback_change", args=[postback.pk]))
    assert page.status_code == 200
    postback.refresh_from_db()
    assert postback.resumed_at is not None
    assert "Resumed at" in page.content.decode()


def test_backfill_action(staff, conversion, postback):
    response = _action(
        staff, "admin:partners_affiliatepostback_changelist", "backfill_7_days", [postback.pk]
    )
    assert _messages(response) == ["Queued 1 call(s)."]
    assert PostbackOutbox.objects.get().conversion == conversion


def test_new_signing_key_action_shows_the_secret_once(staff, affiliate):
    response = _action(
        staff, "admin:partners_affiliate_changelist", "new_signing_key", [affiliate.pk]
    )
    [message] = _messages(response)
    secret = message.split("new signing key ")[1].split(" ")[0]
    assert secret.startswith("whsec_")
    assert signing_secrets_active(affiliate_id=affiliate.pk, now=timezone.now()) == [secret]
    page = staff.get(reverse("admin:partners_affiliate_change", args=[affiliate.pk]))
    assert page.status_code == 200
    assert secret not in page.content.decode()
    assert AffiliateSigningKey.objects.get().prefix in page.content.decode()


# --- the outbox ---------------------------------------------------------------------------------


@pytest.fixture
def rows(conversion, postback):
    [row_id] = outbound.outbox_write(conversion=conversion, now=timezone.now())
    OutboundPostbackDelivery.objects.create(
        conversion=conversion,
        outbox_id=row_id,
        postback=postback,
        conversion_status="approved",
        attempt=1,
        url="https://tracker.example.net/pb?c=clk-admin-1",
        http_status=500,
        response_body="boom",
    )
    PostbackOutbox.objects.filter(pk=row_id).update(
        state="failed", attempts=8, last_error="HTTP 500"
    )
    return PostbackOutbox.objects.get(pk=row_id)


def test_outbox_changelist_filters_and_searches(staff, rows):
    url = reverse("admin:conversions_postbackoutbox_changelist")
    assert staff.get(url, {"state__exact": "failed"}).context["cl"].result_count == 1
    assert staff.get(url, {"state__exact": "pending"}).context["cl"].result_count == 0
    assert staff.get(url, {"q": "clk-admin-1"}).context["cl"].result_count == 1
    assert staff.get(url, {"q": str(rows.conversion_id)}).context["cl"].result_count == 1
    assert staff.get(url, {"q": "nope"}).context["cl"].result_count == 0


def test_outbox_row_shows_its_attempts(staff, rows):
    page = staff.get(reverse("admin:conversions_postbackoutbox_change", args=[rows.pk]))
    assert page.status_code == 200
    assert "boom" in page.content.decode()
    assert staff.get(reverse("admin:conversions_postbackoutbox_add")).status_code == 403


def test_outbox_resend_and_cancel_actions(staff, rows):
    url_name = "admin:conversions_postbackoutbox_changelist"
    response = _action(staff, url_name, "resend", [rows.pk])
    assert _messages(response) == ["Queued 1 postback(s)."]
    rows.refresh_from_db()
    assert (rows.state, rows.attempts) == ("pending", 0)

    response = _action(staff, url_name, "cancel", [rows.pk])
    assert _messages(response) == ["Cancelled 1 pending row(s)."]
    rows.refresh_from_db()
    assert rows.state == "cancelled"


def test_outbox_resend_of_a_delivered_row_queues_a_new_event(staff, rows):
    PostbackOutbox.objects.filter(pk=rows.pk).update(state="delivered")
    response = _action(staff, "admin:conversions_postbackoutbox_changelist", "resend", [rows.pk])
    assert _messages(response) == [
        "Queued 1 postback(s), 1 of them delivered before (sent as a new event)."
    ]
    resend = PostbackOutbox.objects.get(resend_number=1)
    assert (resend.state, resend.requested_by.username) == ("pending", "root")
    page = staff.get(reverse("admin:conversions_postbackoutbox_change", args=[resend.pk]))
    assert page.status_code == 200


DELIVERIES = "admin:conversions_outboundpostbackdelivery_changelist"


def test_deliveries_resend_action_in_the_delivery_log(staff, rows):
    """The delivery log's own admin offers the resend: the undelivered row is requeued, a
    delivered one goes out again as a new event, a test fire (no row) is left out."""
    test_fire = OutboundPostbackDelivery.objects.create(
        postback=rows.postback, is_test=True, conversion_status="approved", attempt=1, url="x"
    )
    changelist = staff.get(reverse(DELIVERIES))
    assert "deliveries_resend" in changelist.content.decode()

    response = _action(
        staff, DELIVERIES, "deliveries_resend", [rows.attempts_log.get().pk, test_fire.pk]
    )

    assert _messages(response) == [
        "Queued 1 postback(s). 1 attempt(s) without an outbox row (test fires, pruned) left out."
    ]
    rows.refresh_from_db()
    assert (rows.state, rows.attempts) == ("pending", 0)

    PostbackOutbox.objects.filter(pk=rows.pk).update(state="delivered")
    response = _action(staff, DELIVERIES, "deliveries_resend", [rows.attempts_log.get().pk])
    assert _messages(response) == [
        "Queued 1 postback(s), 1 of them delivered before (sent as a new event)."
    ]
    assert PostbackOutbox.objects.get(resend_number=1).requested_by.username == "root"


def test_deliveries_resend_needs_the_outbox_change_permission(rows):
    """A staff member who may only read the delivery log may not resend from it."""
    reader = User.objects.create_user(username="reader", password="reader-pw-12345", is_staff=True)
    reader.user_permissions.add(
        Permission.objects.get(codename="view_outboundpostbackdelivery"),
        Permission.objects.get(codename="view_postbackoutbox"),
    )
    client = Client()
    client.force_login(reader)
    changelist = client.get(reverse(DELIVERIES))
    assert changelist.status_code == 200
    assert "deliveries_resend" not in changelist.content.decode()

    response = client.post(
        reverse(DELIVERIES),
        {"action": "deliveries_resend", "_selected_action": [rows.attempts_log.get().pk]},
    )
    assert response.status_code in (200, 302)
    rows.refresh_from_db()
    assert rows.state == "failed"

    reader.user_permissions.add(Permission.objects.get(codename="change_postbackoutbox"))
    reader = User.objects.get(pk=reader.pk)  # permissions are cached per user object
    client.force_login(reader)
    assert "deliveries_resend" in client.get(reverse(DELIVERIES)).content.decode()


def test_deliveries_resend_function_requeues_their_rows(rows, rf, monkeypatch):
    sent: list[str] = []
    model_admin = admin.site._registry[OutboundPostbackDelivery]
    monkeypatch.setattr(
        model_admin, "message_user", lambda request, message, *a, **k: sent.append(message)
    )
    request = rf.post("/")
    request.user = User.objects.create_superuser(username="su", password="su-password-123")
    deliveries_resend(model_admin, request, OutboundPostbackDelivery.objects.all())
    rows.refresh_from_db()
    assert rows.state == "pending"
    assert sent == ["Queued 1 postback(s)."]


def test_advertiser_users_cannot_reach_the_outbox(rows, advertiser):
    from apps.accounts.services import advertiser_user_create

    advertiser_user_create(username="adv", password="adv-password-123", advertiser_id=advertiser.pk)
    client = Client()
    assert client.login(username="adv", password="adv-password-123")
    for url in (
        reverse("admin:conversions_postbackoutbox_changelist"),
        reverse("admin:conversions_postbackoutbox_change", args=[rows.pk]),
        reverse(DELIVERIES),
    ):
        assert client.get(url).status_code == 403
    response = client.post(
        reverse("admin:conversions_postbackoutbox_changelist"),
        {"action": "resend", "_selected_action": [rows.pk]},
    )
    assert response.status_code == 403
    response = client.post(
        reverse(DELIVERIES),
        {"action": "deliveries_resend", "_selected_action": [rows.attempts_log.get().pk]},
    )
    assert response.status_code == 403
    rows.refresh_from_db()
    assert rows.state == "failed"


def test_outbox_date_hierarchy_renders(staff, rows):
    PostbackOutbox.objects.update(created_at=timezone.now() - timedelta(days=400))
    url = reverse("admin:conversions_postbackoutbox_changelist")
    assert staff.get(url, {"created_at__year": "2024"}).status_code == 200
