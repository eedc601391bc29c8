"""Small SQL helpers for the hot paths, where the ORM's query building costs more than the query."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import psycopg
from django.db import connection, models


@cache
def _insert_sql(model: type[models.Model]) -> tuple[str, tuple[models.Field, ...]]:
    meta = model._meta
    fields = tuple(field for field in meta.concrete_fields if not field.primary_key)
    columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    pk_column = connection.ops.quote_name(str(meta.pk.column))  # type: ignore[union-attr]
    # Table and column names come from the model, never from a request.
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) "  # noqa: S608
        f"VALUES ({placeholders}) ON CONFLICT DO NOTHING RETURNING {pk_column}"
    )
    return sql, fields


def fetchall_prepared(sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run a fixed hot-path statement as a server-side prepared statement, in the current
    transaction: PostgreSQL plans it once per connection instead of on every call (planning a
    query with several subqueries costs more than running it). Django's own cursors bind
    parameters client-side and never prepare. Not for statements built from input."""
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)  # type: ignore[call-overload]
        return cursor.fetchall() if cursor.description is not None else []


def fetchone_prepared(
    sql: str, params: Sequence[Any] | Mapping[str, Any]
) -> tuple[Any, ...] | None:
    """The first row of fetchall_prepared (the statement returns at most one)."""
    rows = fetchall_prepared(sql, params)
    return rows[0] if rows else None


def insert_unless_conflict(obj: models.Model) -> bool:
    """INSERT the new object, or nothing when a unique constraint already holds its twin.

    Values are prepared by each field as Model.save() prepares them (defaults, auto_now, JSON,
    inet); no signals are sent. Returns True and sets the primary key when the row went in."""
    sql, fields = _insert_sql(type(obj))
    values = [field.get_db_prep_save(field.pre_save(obj, add=True), connection) for field in fields]
    row = fetchone_prepared(sql, values)
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = connection.alias
    return True
