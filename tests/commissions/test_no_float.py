"""No float on the money path: not in the source, not in what the services return."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest

import apps.commissions
from apps.commissions.models import LedgerEntry, Statement
from apps.commissions.selectors import balance_breakdown_for_affiliate
from apps.commissions.services import balance_for_affiliate, commission_accrue
from apps.common import money
from tests.commissions.conftest import T0

SOURCES = [
    *sorted(Path(apps.commissions.__file__).parent.rglob("*.py")),
    Path(money.__file__),
]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_float_in_the_source(path):
    tree = ast.parse(path.read_text())
    offenders = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "float":
            offenders.append(f"float at line {node.lineno}")
        if isinstance(node, ast.Attribute) and node.attr == "FloatField":
            offenders.append(f"FloatField at line {node.lineno}")
        if isinstance(node, ast.Constant) and type(node.value) is float:
            offenders.append(f"float literal {node.value} at line {node.lineno}")
        is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
        text = node.value.lower() if is_text else ""
        if "::float" in text or "double precision" in text:
            offenders.append(f"SQL float cast at line {node.lineno}")
    assert offenders == []


def test_money_columns_are_decimal():
    from django.db import models

    for model in (LedgerEntry, Statement):
        for field in model._meta.get_fields():
            assert not isinstance(field, models.FloatField), field
    assert isinstance(LedgerEntry._meta.get_field("amount"), models.DecimalField)


@pytest.mark.django_db
def test_results_are_decimal(convert, affiliate):
    convert(payout=Decimal("0.10"), created_at=T0)
    convert(payout=Decimal("0.20"), created_at=T0)
    convert(payout=Decimal("1006"), currency="JPY", created_at=T0)
    commission_accrue(now=T0)
    amounts = list(LedgerEntry.objects.values_list("amount", flat=True))
    assert all(type(a) is Decimal for a in amounts)
    # 0.1 + 0.2 is exactly 0.3 here (it is not in binary floating point).
    assert balance_for_affiliate(affiliate_id=affiliate.pk) == {
        "JPY": Decimal("1006.00"),
        "USD": Decimal("0.30"),
    }
    for balance in balance_breakdown_for_affiliate(affiliate_id=affiliate.pk, now=T0):
        for value in (balance.pending, balance.available, balance.paid, balance.total):
            assert type(value) is Decimal
