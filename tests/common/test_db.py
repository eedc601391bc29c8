"""The hot-path SQL helpers really use server-side prepared statements, with generic plans."""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal

import psycopg._queries
import pytest
import time_machine
from django.db import (
    DEFAULT_DB_ALIAS,
    OperationalError,
    close_old_connections,
    connection,
    connections,
)
from django.db.models.signals import post_init
from django.utils import timezone

from apps.commissions.models import AccrualQueue
from apps.common.db import (
    _insert_sql,
    _insert_values,
    fetchone_prepared,
    follower_insert,
    insert_with_followers,
    model_new,
)
from apps.conversions.models import Conversion, InboundPostbackLog
from apps.quality.models import LeadFingerprint
from apps.tracking.models import Click
from tests import factories

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


def _twin_of(conversion: Conversion) -> Conversion:
    """An unsaved copy of a conversion (same click, goal and order id), new primary key."""
    twin = Conversion.objects.get(pk=conversion.pk)
    twin.pk = None
    twin._state.adding = True
    return twin


def test_a_row_and_its_followers_go_in_together_with_their_results():
    conversion = factories.ConversionFactory.build(
        click=factories.ClickFactory(), goal=factories.GoalFactory()
    )
    conversion.offer = conversion.goal.offer
    fingerprint = LeadFingerprint(
        offer_id=conversion.offer_id,
        affiliate_id=conversion.affiliate_id,
        ua_ip_hash="h1",
        created_at=conversion.created_at,
    )
    results = insert_with_followers(conversion, [follower_insert(fingerprint, link="conversion")])

    assert conversion.pk is not None
    stored = LeadFingerprint.objects.get(conversion_id=conversion.pk)
    assert results == [stored.pk]
    assert (stored.ua_ip_hash, stored.offer_id) == ("h1", conversion.offer_id)


def test_when_the_row_is_already_there_nothing_is_written():
    existing = factories.ConversionFactory()
    fingerprint = LeadFingerprint(
        offer_id=existing.offer_id,
        affiliate_id=existing.affiliate_id,
        ua_ip_hash="h2",
        created_at=existing.created_at,
    )
    twin = _twin_of(existing)
    assert insert_with_followers(twin, [follower_insert(fingerprint, link="conversion")]) is None
    assert twin.pk is None
    assert Conversion.objects.count() == 1
    assert not LeadFingerprint.objects.exists()


def test_a_long_statement_with_many_parameters_is_converted_once():
    """psycopg would split a statement over 4 KB or 50 parameters anew on every call (the new
    conversion's one statement is both); apps.common.db raises its cache limits."""
    values = ", ".join(f"%s::int AS c{n}" for n in range(120))
    sql = f"SELECT {values} /* {'x' * 5000} */"
    fetchone_prepared(sql, list(range(120)))
    before = psycopg._queries._query2pg.cache_info().hits
    assert fetchone_prepared(sql, list(range(120))) == tuple(range(120))
    assert psycopg._queries._query2pg.cache_info().hits == before + 1


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_dropped_is_replaced_after_the_request():
    """PostgreSQL restarted under a web process in the middle of a request: the hot path's raw
    psycopg cursor fails once with Django's OperationalError, and the end of the request
    (close_old_connections) drops the connection, so the next request reconnects."""
    fetchone_prepared("SELECT 1", [])
    _terminate_backend(connection.connection.info.backend_pid)
    with pytest.raises(OperationalError):
        fetchone_prepared("SELECT 1", [])
    close_old_connections()  # what request_finished runs
    assert fetchone_prepared("SELECT %s::int", [7]) == (7,)


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_dropped_between_requests_is_replaced_before_the_next(
    monkeypatch,
):
    """PostgreSQL restarted while the connection sat idle: the next request's first statement
    sees it (the server's FATAL is waiting on the socket), reconnects as Django's health check
    would, and answers instead of failing. A healthy connection costs no check query."""
    db = connections[DEFAULT_DB_ALIAS]
    checks = []
    is_usable = db.is_usable
    monkeypatch.setattr(db, "is_usable", lambda: checks.append(1) or is_usable())
    fetchone_prepared("SELECT 1", [])
    close_old_connections()  # request_started: the next statement is the request's first
    old_pid = fetchone_prepared("SELECT pg_backend_pid()", [])
    assert checks == []  # nothing on the socket, no SELECT 1
    _terminate_backend(connection.connection.info.backend_pid)
    close_old_connections()
    assert fetchone_prepared("SELECT pg_backend_pid()", []) not in (old_pid, None)
    assert checks == [1]


def _terminate_backend(pid: int) -> None:
    """pg_terminate_backend, then wait until the backend is gone (it exits asynchronously)."""
    with psycopg.connect(_admin_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 10
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, "the backend did not exit"
            time.sleep(0.01)


def _admin_url() -> str:
    db = connection.settings_dict
    return f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _as_django_prepares(obj, fields):
    return [field.get_db_prep_save(field.pre_save(obj, add=True), connection) for field in fields]


def _compared(values):
    """Type and repr: psycopg's wrappers (Jsonb, Int2, Inet) have no equality of their own."""
    return [(type(value), repr(value)) for value in values]


def test_values_are_prepared_as_django_prepares_them():
    """The insert helpers take a str, a bool or an aware datetime as it is (what the field's own
    preparation would give back); everything else goes through the field: psycopg's Int2/Int8
    for integers, JSON, inet, Decimal, a naive datetime made aware, auto_now filled in."""
    conversion = factories.ConversionFactory.build(
        click=factories.ClickFactory(ip="2001:db8::1"),
        quality_reasons=["repeat_ip_on_offer"],
        quality_evidence={"repeat_ip_on_offer": {"ip": "2001:db8::1"}},
        sale_amount=Decimal("12.50"),
        ip=None,
    )
    fingerprint = LeadFingerprint(offer_id=1, affiliate_id=2, sub1="s", ua_ip_hash="ab")
    log = InboundPostbackLog(method="GET", path="/postback", params={"a": "b"}, http_status=200)
    for obj in (conversion, fingerprint, log):
        fields = _insert_sql(type(obj))[1]
        with time_machine.travel(timezone.now(), tick=False):  # auto_now: one "now" for both
            fast, django_way = _insert_values(obj, fields), _as_django_prepares(obj, fields)
        assert _compared(fast) == _compared(django_way), type(obj).__name__


def test_a_value_of_another_type_takes_the_fields_own_path():
    conversion = factories.ConversionFactory.build(click=factories.ClickFactory())
    # A naive time (made aware, with a warning).
    conversion.click_created_at = datetime(2026, 1, 2, 3, 4, 5)  # noqa: DTZ001
    conversion.goal_once = 1  # an int where a bool goes: as the field makes it
    conversion.quality_score = "7"  # text where an int goes: made an int, then wrapped
    conversion.affiliate_id = True  # a bool is no int here
    fields = _insert_sql(Conversion)[1]
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        fast = _insert_values(conversion, fields)
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        django_way = _as_django_prepares(conversion, fields)
    names = [field.name for field in fields]
    for name in ("click_created_at", "goal_once", "quality_score", "affiliate"):
        position = names.index(name)
        assert _compared([fast[position]]) == _compared([django_way[position]])
    assert fast[names.index("click_created_at")].tzinfo is not None


def _built(obj: object) -> tuple[dict[str, object], tuple[object, ...]]:
    """An instance's field values and its state, for comparing two ways of building it."""
    values = {key: value for key, value in vars(obj).items() if key != "_state"}
    state = obj._state  # type: ignore[attr-defined]
    return values, (state.adding, state.db, dict(state.fields_cache))


def test_model_new_builds_what_the_model_builds():
    """Field values given by name or attname, related objects (set and cached through their
    descriptor), fixed and callable defaults for what was not given."""
    click = factories.ClickFactory(ip="203.0.113.9", sub1="s1")
    goal = factories.GoalFactory(offer=click.offer)
    now = timezone.now()
    conversion = {
        "offer": click.offer,
        "affiliate_id": click.affiliate_id,
        "goal": goal,
        "click_id": click.click_id,
        "click_created_at": click.created_at,
        "order_id": "o-1",
        "status": "approved",
        "currency": "USD",
        "sale_amount": Decimal("10.00"),
        "payout": Decimal("1.00"),
        "revenue": Decimal("2.00"),
        "ip": None,
        "quality_reasons": ["repeat_ip_on_offer"],
        "created_at": now,
    }
    click_row = {name: getattr(click, name) for name in ("id", "click_id", "offer_id", "ip")}
    cases = [
        (Conversion, conversion),
        (Click, click_row),
        (LeadFingerprint, {"offer_id": 1, "affiliate_id": 2, "sub1": "s", "created_at": now}),
        (InboundPostbackLog, {"method": "GET", "path": "/postback", "params": {"a": "b"}}),
        (InboundPostbackLog, {}),
        (AccrualQueue, {"conversion_id": 1}),  # a database default (queued_at)
    ]
    for model, values in cases:
        assert _built(model_new(model, **values)) == _built(model(**values)), model.__name__
    built = model_new(Conversion, **conversion)
    assert built.offer is click.offer and built.goal is goal  # cached, no query
    assert built.offer_id == click.offer_id and built.goal_id == goal.pk
    # A callable default is called for each object: no two share a dict.
    first, second = model_new(InboundPostbackLog), model_new(InboundPostbackLog)
    assert first.params == {} and first.params is not second.params
    # A database default is a new expression for each object, as Django makes it.
    assert model_new(AccrualQueue).queued_at is not model_new(AccrualQueue).queued_at


def test_model_new_refuses_what_the_model_refuses():
    with pytest.raises(TypeError, match="unexpected keyword"):
        model_new(LeadFingerprint, no_such_field=1)
    with pytest.raises(ValueError, match="must be a"):
        model_new(Conversion, offer=factories.AffiliateFactory())


def test_model_new_sends_init_signals_when_someone_listens():
    seen = []

    def receiver(sender: type, instance: object, **kwargs: object) -> None:
        seen.append(instance)

    post_init.connect(receiver, sender=LeadFingerprint)
    try:
        fingerprint = model_new(LeadFingerprint, sub1="s")
    finally:
        post_init.disconnect(receiver, sender=LeadFingerprint)
    assert seen == [fingerprint]
    model_new(LeadFingerprint, sub1="s")  # no receiver now: the fast path
    assert len(seen) == 1
