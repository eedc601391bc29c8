"""Small SQL helpers for the hot paths, where the ORM's query building costs more than the query."""

from __future__ import annotations

import select
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, TypeVar, cast

import psycopg
import psycopg._queries
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from psycopg.pq import ExecStatus

ModelT = TypeVar("ModelT", bound=models.Model)

# psycopg caches the conversion of a query's %s placeholders only up to 4 KB and 50 parameters;
# a new conversion's one statement (insert_with_followers) is longer and has more, and was split
# anew on every postback. Every statement run here is fixed text, so caching them is safe.
if hasattr(psycopg._queries, "MAX_CACHED_STATEMENT_LENGTH"):
    psycopg._queries.MAX_CACHED_STATEMENT_LENGTH = 32_768
    psycopg._queries.MAX_CACHED_STATEMENT_PARAMS = 256


@cache
def _insert_sql(model: type[models.Model]) -> tuple[str, tuple[models.Field, ...]]:
    meta = model._meta
    fields = tuple(field for field in meta.concrete_fields if not field.primary_key)
    columns = _column_list(fields)
    placeholders = ", ".join(["%s"] * len(fields))
    # Table and column names come from the model, never from a request.
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) "  # noqa: S608
        f"VALUES ({placeholders}) ON CONFLICT DO NOTHING"
    )
    return sql, fields


@cache
def model_columns(model: type[models.Model]) -> tuple[str, tuple[str, ...]]:
    """The model's columns as an SQL select list, and the matching field attnames (for
    model_from_row)."""
    fields = model._meta.concrete_fields
    return _column_list(fields), tuple(field.attname for field in fields)


def _column_list(fields: Sequence[models.Field]) -> str:
    return ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)


def model_from_row(model: type[ModelT], row: Sequence[Any]) -> ModelT:
    """An instance from a row selected with model_columns, as the ORM itself builds one."""
    return model.from_db(connection.alias, list(model_columns(model)[1]), row)


@cache
def _new_plan(
    model: type[models.Model],
) -> tuple[dict[str, Any], tuple[tuple[str, str, Callable[[], Any]], ...], dict[str, str]]:
    """For model_new: the defaults that are fixed values, the fields whose default is made per
    instance (a callable default; a database default, which Django marks with a new expression
    each time), and each field's attname by its name and by its attname."""
    fixed, called, attnames = {}, [], {}
    for field in model._meta.concrete_fields:
        attnames[field.name] = attnames[field.attname] = field.attname
        if (field.has_default() and callable(field.default)) or field.has_db_default():
            called.append((field.name, field.attname, field.get_default))
        else:
            fixed[field.attname] = field.get_default()
    return fixed, tuple(called), attnames


def model_new(model: type[ModelT], **values: Any) -> ModelT:
    """`model(**values)`, the object Model.__init__ builds, in half its time (a conversion's 40
    fields: 17 instead of 33 us; a postback builds four objects). __init__ takes each of the
    model's fields in turn, whatever was given; here the defaults come in one dict update and
    only the given values are set one by one. A related object (given by its field's name) goes
    through the field's descriptor, as in __init__. Anything else (a property, an unknown name)
    and a model with pre_init or post_init receivers take Django's own path."""
    fixed, called, attnames = _new_plan(model)
    if (
        not values.keys() <= attnames.keys()
        or pre_init.has_listeners(model)
        or post_init.has_listeners(model)
    ):
        return model(**values)
    obj = model.__new__(model)
    obj._state = ModelState()
    attrs = obj.__dict__
    attrs.update(fixed)
    for name, attname, default in called:
        if name not in values and attname not in values:
            attrs[attname] = default()
    for name, value in values.items():
        attname = attnames[name]
        if attname == name:
            attrs[name] = value
        else:  # a related object: the descriptor sets the key and caches the object
            setattr(obj, name, value)
    return obj


def fetchall_prepared(sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run a fixed hot-path statement as a server-side prepared statement, in the current
    transaction: PostgreSQL plans it once per connection instead of on every call (planning a
    query with several subqueries costs more than running it). Django's own cursors bind
    parameters client-side and never prepare. Not for statements built from input.

    Errors come out as Django's (django.db.OperationalError and so on) and mark the connection
    as Django's own cursors do, so a connection the server dropped is closed at the end of the
    request (close_old_connections) instead of failing every request after it. One the server
    dropped while it sat idle between requests is replaced before the request's first statement
    (_close_if_dropped)."""
    db = connections[DEFAULT_DB_ALIAS]  # the thread's own wrapper: no proxy per attribute
    _close_if_dropped(db)
    db.ensure_connection()
    with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
        cursor.execute(sql, params, prepare=True)  # type: ignore[call-overload]
        # Not cursor.description: it builds a Column object per column on every call.
        result = cursor.pgresult
        return cursor.fetchall() if result and result.status == ExecStatus.TUPLES_OK else []


def _close_if_dropped(db: Any) -> None:  # Any: the stubs lack the health check's attributes
    """Django's health check (CONN_HEALTH_CHECKS), without its cost: Django runs a SELECT 1, a
    round trip, before the first query of every request. Here it runs only when the idle
    connection's socket has something to read: a server that restarted, failed over or killed
    the backend sent its FATAL and closed the socket. Then, as Django does, a connection that
    fails the check is closed (ensure_connection opens a new one). A server that vanished
    without a word is caught as before, by the statement failing and the connection being
    dropped at the end of the request."""
    if db.connection is None or not db.health_check_enabled or db.health_check_done:
        return
    db.health_check_done = True
    try:
        poller = select.poll()
        poller.register(db.connection.fileno(), select.POLLIN)
        signalled = bool(poller.poll(0))
    except (OSError, ValueError, psycopg.Error):  # no socket left: closed already
        signalled = True
    if signalled and not db.is_usable():
        db.close()


def fetchone_prepared(
    sql: str, params: Sequence[Any] | Mapping[str, Any]
) -> tuple[Any, ...] | None:
    """The first row of fetchall_prepared (the statement returns at most one)."""
    rows = fetchall_prepared(sql, params)
    return rows[0] if rows else None


# The fields whose preparation for the database (pre_save, then get_db_prep_save) gives back a
# value of these exact types unchanged: a str for a CharField, a bool, an aware datetime for a
# DateTimeField that does not fill itself in (auto_now). Integers (integer fields, and foreign
# keys to one) are given the wrapper Django gives them (_int_wrapper). Everything else takes the
# field's own path: JSON, inet, Decimal, naive times, None where NULL is not allowed.
_PLAIN_TYPES: dict[type[models.Field], type] = {
    models.CharField: str,
    models.TextField: str,
    models.BooleanField: bool,
    models.DateTimeField: datetime,
}
_UNSET = object()


def _fills_itself_in(field: models.Field) -> bool:
    return getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)


def _plain_type(field: models.Field) -> type | None:
    if _fills_itself_in(field):
        return None
    related = field.many_to_one or field.one_to_one
    target = cast(models.ForeignKey, field).target_field if related else field
    if isinstance(target, models.IntegerField):
        return int
    return _PLAIN_TYPES.get(type(field))


def _int_wrapper(field: models.Field) -> Callable[[int], Any] | None:
    """What Django puts an int in for this field: psycopg's Int2/Int4/Int8 for an integer
    column, so a parameter's type never changes with its size (psycopg alone would pick int2 for
    1, int4 for 100000); nothing for an auto primary key (a foreign key to one included)."""
    sample = field.get_db_prep_save(1, connection)
    return None if type(sample) is int else type(sample)


@cache
def _insert_plan(
    model: type[models.Model],
) -> tuple[tuple[str, type | None, bool, Callable[[int], Any] | None], ...]:
    """Per field: its attribute, the type its values pass through as, whether None does, and
    for an integer the wrapper it goes in."""
    plan = []
    for field in _insert_sql(model)[1]:
        plain = _plain_type(field)
        wrap = _int_wrapper(field) if plain is int else None
        plan.append((field.attname, plain, field.null and not _fills_itself_in(field), wrap))
    return tuple(plan)


def _insert_values(obj: models.Model, fields: Sequence[models.Field]) -> list[Any]:
    """Each field's value as Model.save() prepares it (defaults, auto_now, JSON, inet). A value
    that preparation would give back unchanged (an int: wrapped as it would) is taken as it is:
    a conversion's 40 fields 19 instead of 31 us for strings, booleans and times; with the
    integers too, a postback's three rows 24 instead of 31 us."""
    # The thread's own wrapper, not the `connection` proxy: each field looks at it several times.
    db = connections[DEFAULT_DB_ALIAS]
    values = obj.__dict__
    prepared: list[Any] = []
    for field, (attname, plain, null, wrap) in zip(fields, _insert_plan(type(obj)), strict=True):
        value: Any = values.get(attname, _UNSET)
        if value is None and null:
            prepared.append(None)
        elif (
            plain is not None
            and type(value) is plain
            and (plain is not datetime or cast(datetime, value).utcoffset() is not None)
        ):
            prepared.append(value if wrap is None else wrap(cast(int, value)))
        else:
            prepared.append(field.get_db_prep_save(field.pre_save(obj, add=True), db))
    return prepared


def _inserted(obj: models.Model, pk: object) -> None:
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = connection.alias


def insert_unless_conflict(obj: models.Model) -> bool:
    """INSERT the new object, or nothing when a unique constraint already holds its twin.

    Values are prepared by each field as Model.save() prepares them (defaults, auto_now, JSON,
    inet); no signals are sent. Returns True and sets the primary key when the row went in."""
    sql, fields = _insert_sql(type(obj))
    row = fetchone_prepared(f"{sql} RETURNING {_pk_column(type(obj))}", _insert_values(obj, fields))
    if row is None:
        return False
    _inserted(obj, row[0])
    return True


@dataclass(frozen=True)
class Follower:
    """A statement that writes rows for a row just inserted, in the same statement: `sql`
    selects from the CTE `new` (the inserted row, all its columns) and runs only when the row
    went in. `result`, if any, is an SQL expression over the follower's own CTE (named by `{}`)
    whose value insert_with_followers returns."""

    sql: str
    params: tuple[Any, ...] = ()
    result: str | None = None


def follower_insert(obj: models.Model, *, link: str) -> Follower:
    """Insert `obj` with its foreign key `link` pointing at the new row; the result is the
    primary key `obj` got (None if a unique constraint already held its twin)."""
    sql, result, fields, linked = _follower_sql(type(obj), link)
    params = tuple(
        value
        for field, value in zip(fields, _insert_values(obj, fields), strict=True)
        if field is not linked
    )
    return Follower(sql, params, result=result)


@cache
def _follower_sql(
    model: type[models.Model], link: str
) -> tuple[str, str, tuple[models.Field, ...], models.Field]:
    insert, fields = _insert_sql(model)
    linked = model._meta.get_field(link)
    values = ", ".join("new.id" if field is linked else "%s" for field in fields)
    # Table and column names come from the model, never from a request.
    into, pk = insert[: insert.index(" VALUES (")], _pk_column(model)
    sql = f"{into} SELECT {values} FROM new ON CONFLICT DO NOTHING RETURNING {pk}"  # noqa: S608
    return sql, f"(SELECT {pk} FROM {{}})", fields, cast(models.Field, linked)  # noqa: S608


def insert_with_followers(obj: models.Model, followers: Sequence[Follower]) -> list[Any] | None:
    """INSERT the new object unless a unique constraint already holds its twin (as
    insert_unless_conflict), and with it, in one statement (one round trip, atomic on its own),
    the followers' rows. Returns the followers' results in order, or None (and nothing written)
    when the object was already there."""
    fields = _insert_sql(type(obj))[1]
    params: list[Any] = _insert_values(obj, fields)
    for follower in followers:
        params.extend(follower.params)
    sql = _with_followers_sql(type(obj), tuple((f.sql, f.result) for f in followers))
    row = fetchone_prepared(sql, params)
    if row is None:
        return None
    _inserted(obj, row[0])
    return list(row[1:])


@cache
def _with_followers_sql(
    model: type[models.Model], followers: tuple[tuple[str, str | None], ...]
) -> str:
    """insert_with_followers' statement for the model and its followers' (sql, result): fixed
    text written in this code base (as every prepared statement), so there are few of them."""
    parts = [f"WITH new AS ({_insert_sql(model)[0]} RETURNING *)"]
    results = []
    for number, (sql, result) in enumerate(followers):
        parts.append(f", follower{number} AS ({sql})")
        if result is not None:
            results.append(result.format(f"follower{number}"))
    # Every part is SQL written in this code base (models, followers), never from a request.
    selected = "".join(", " + result for result in results)
    parts.append(f"SELECT new.{_pk_column(model)}{selected} FROM new")  # noqa: S608
    return "\n".join(parts)


@cache
def _pk_column(model: type[models.Model]) -> str:
    return connection.ops.quote_name(str(model._meta.pk.column))  # type: ignore[union-attr]
