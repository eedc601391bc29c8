from __future__ import annotations

import datetime as dt

import pytest

from apps.conversions.models import Conversion
from tests import factories

T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)  # a Monday


@pytest.fixture
def convert(goal, affiliate):
    """A conversion of `affiliate` (or another) on the `goal` fixture's offer."""

    def make(*, on=None, by=None, **kwargs) -> Conversion:
        click = factories.ClickFactory(offer=(on or goal).offer, affiliate=by or affiliate)
        return factories.ConversionFactory(click=click, goal=on or goal, **kwargs)

    return make


@pytest.fixture
def staff_user(db):
    return factories.UserFactory(is_staff=True, is_superuser=True)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    """An instant in UTC."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)
