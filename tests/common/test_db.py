"""The hot-path SQL helpers really use server-side prepared statements, with generic plans."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.common.db import fetchone_prepared

pytestmark = pytest.mark.django_db

_PROBE_SQL = "SELECT %s::int + 1 /* tests.common.test_db probe */"


def _prepared_probes() -> list[tuple[str, int, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE %s",
            ["%tests.common.test_db probe%"],
        )
        return cursor.fetchall()


def test_a_hot_path_statement_is_prepared_once_and_planned_generically():
    assert fetchone_prepared(_PROBE_SQL, [1]) == (2,)
    assert fetchone_prepared(_PROBE_SQL, [41]) == (42,)
    assert fetchone_prepared(_PROBE_SQL, [9]) == (10,)

    [(statement, generic_plans, custom_plans)] = _prepared_probes()
    assert "$1::int + 1" in statement
    # One prepared statement, every call on its generic plan (plan_cache_mode): never a custom
    # plan made for one call's parameters.
    assert (generic_plans, custom_plans) == (3, 0)


def test_orm_queries_are_not_prepared():
    """Only the explicit hot-path statements are prepared: the ORM's queries stay unprepared
    (a pooler in transaction mode and the ORM's ad hoc SQL would fill the cache otherwise)."""
    for _ in range(10):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 /* tests.common.test_db probe orm */")
    assert _prepared_probes() == []
