"""Conversion status changes in the admin: staff actions and advertiser scrub, each recorded in
the status history, none by editing the status field."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from apps.conversions.models import Conversion, ConversionStatusChange
from apps.offers.models import ConversionStatus

from .conftest import AdminWorld

CHANGELIST = "admin:conversions_conversion_changelist"


def _action(client, action: str, ids: list[int]):
    return client.post(
        reverse(CHANGELIST), {"action": action, "_selected_action": ids}, follow=True
    )


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_staff_reverse_action_records_history(admin_world: AdminWorld):
    w = admin_world
    response = _action(w.super_client, "reverse_selected", [w.conv_x.pk])

    assert _messages(response) == [
        "1 conversion(s) now reversed; 0 left as they were (not a move their status allows)."
    ]
    w.conv_x.refresh_from_db()
    assert w.conv_x.status == ConversionStatus.REVERSED
    change = ConversionStatusChange.objects.get(conversion=w.conv_x)
    assert (change.old_status, change.new_status, change.source, change.user.username) == (
        "approved",
        "reversed",
        "admin",
        "root",
    )


def test_staff_approve_skips_conversions_that_cannot_move(admin_world: AdminWorld):
    w = admin_world
    Conversion.objects.filter(pk=w.conv_y.pk).update(status=ConversionStatus.PENDING)
    Conversion.objects.filter(pk=w.conv_x.pk).update(status=ConversionStatus.REVERSED)

    response = _action(w.super_client, "approve_selected", [w.conv_x.pk, w.conv_y.pk])

    assert _messages(response) == [
        "1 conversion(s) now approved; 1 left as they were (not a move their status allows)."
    ]
    statuses = dict(Conversion.objects.values_list("pk", "status"))
    assert statuses == {w.conv_x.pk: "reversed", w.conv_y.pk: "approved"}


def test_status_is_not_editable_in_the_form(admin_world: AdminWorld):
    w = admin_world
    url = reverse("admin:conversions_conversion_change", args=[w.conv_x.pk])
    response = w.super_client.get(url)
    assert response.status_code == 200
    assert "status" not in response.context["adminform"].form.fields


def test_advertiser_user_only_has_scrub_and_scrubs_its_own(admin_world: AdminWorld):
    w = admin_world
    response = w.x_client.get(reverse(CHANGELIST))
    actions = [name for name, _ in response.context["action_form"].fields["action"].choices]
    assert actions == ["", "scrub_selected"]

    # Another advertiser's conversion id in the POST is outside the scoped queryset: untouched.
    response = _action(w.x_client, "scrub_selected", [w.conv_x.pk, w.conv_y.pk])

    assert _messages(response) == ["1 conversion(s) scrubbed; 0 outside the scrub window."]
    statuses = dict(Conversion.objects.values_list("pk", "status"))
    assert statuses == {w.conv_x.pk: "reversed", w.conv_y.pk: "approved"}
    assert ConversionStatusChange.objects.get().source == "scrub"


def test_advertiser_scrub_refused_after_the_window(admin_world: AdminWorld):
    w = admin_world
    w.adv_x.scrub_window_days = 7
    w.adv_x.save(update_fields=["scrub_window_days"])
    Conversion.objects.filter(pk=w.conv_x.pk).update(created_at=timezone.now() - timedelta(days=8))

    response = _action(w.x_client, "scrub_selected", [w.conv_x.pk])

    assert _messages(response) == ["0 conversion(s) scrubbed; 1 outside the scrub window."]
    w.conv_x.refresh_from_db()
    assert w.conv_x.status == "approved"
    assert not ConversionStatusChange.objects.exists()
