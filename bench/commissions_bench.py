"""Commission accrual benchmark: N approved conversions -> N ledger entries, timed.

Run it with `.venv/bin/python bench/commissions_bench.py` (default sizes 250000,500000,1000000).
It uses a database of its own, opencpa_bench_commissions (dropped and re-created), on the server
of DATABASE_URL. Conversions are generated in PostgreSQL with generate_series (1,000 affiliates,
one offer with a 7-day hold, payouts 0.01..99.99 USD), then `commission_accrue()` runs once, as
the beat job would, over an empty ledger. Reported: seconds and rows/s per size, as markdown.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = "opencpa_bench_commissions"

# Filled in explicitly; any other NOT NULL column without a default gets its type's empty value.
EXPLICIT = {
    "click_id": "'bench' || g",
    "click_created_at": "now() - interval '1 day'",
    "offer_id": "%(offer)s",
    "affiliate_id": "%(affiliate_base)s + (g %% 1000)",
    "goal_id": "%(goal)s",
    "order_id": "'o' || g",
    "status": "'approved'",
    "currency": "'USD'",
    "payout": "((g %% 9999) + 1) / 100.0",
    "revenue": "((g %% 9999) + 1) / 50.0",
    "quality_score": "100",
    "is_over_cap": "false",
    "created_at": "now() - interval '1 day'",
    "updated_at": "now() - interval '1 day'",
}
EMPTY_BY_TYPE = {
    "character varying": "''",
    "text": "''",
    "jsonb": "'[]'::jsonb",
    "boolean": "false",
    "integer": "0",
    "smallint": "0",
    "bigint": "0",
    "numeric": "0",
}


def _setup_django() -> None:
    base = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/opencpa"))
    import psycopg

    admin_dsn = base._replace(scheme="postgresql", path="/postgres").geturl()
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DB_NAME}"')
    os.environ["DATABASE_URL"] = base._replace(path=f"/{DB_NAME}").geturl()
    os.environ.setdefault("SECRET_KEY", "bench-only-secret")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.base"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _conversion_insert_sql() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_name = 'conversions_conversion'"
            " ORDER BY ordinal_position"
        )
        columns = cursor.fetchall()
    names, values = [], []
    for name, data_type, nullable, default in columns:
        if name == "id":
            continue
        if name in EXPLICIT:
            names.append(name)
            values.append(EXPLICIT[name])
        elif nullable == "NO" and default is None:
            names.append(name)
            values.append(EMPTY_BY_TYPE[data_type])
    return (
        f"INSERT INTO conversions_conversion ({', '.join(names)})"  # noqa: S608 - our constants
        f" SELECT {', '.join(values)} FROM generate_series(1, %(n)s) AS g"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="250000,500000,1000000")
    args = parser.parse_args()
    _setup_django()

    from django.conf import settings
    from django.db import connection

    from apps.advertisers.models import Advertiser
    from apps.commissions.services import commission_accrue
    from apps.offers.models import Goal, Offer
    from apps.partners.models import Affiliate

    advertiser = Advertiser.objects.create(name="bench")
    offer = Offer.objects.create(
        advertiser=advertiser, name="bench", destination_url="https://example.com/", hold_days=7
    )
    goal = Goal.objects.create(offer=offer, code="sale", name="sale", is_default=True)
    affiliates = Affiliate.objects.bulk_create(Affiliate(name=f"a{i}") for i in range(1000))
    params = {"offer": offer.pk, "goal": goal.pk, "affiliate_base": affiliates[0].pk}
    insert = _conversion_insert_sql()

    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE commissions_ledgerentry, conversions_conversion CASCADE")
            started = time.perf_counter()
            cursor.execute(insert, {**params, "n": size})
            cursor.execute("VACUUM ANALYZE conversions_conversion")
            seeded = time.perf_counter() - started
        started = time.perf_counter()
        written = commission_accrue()
        seconds = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), sum(amount) FROM commissions_ledgerentry")
            count, total = cursor.fetchone()
        if not written == size == count:
            raise SystemExit(f"wrong ledger: {written=} {size=} {count=}")
        started = time.perf_counter()
        again = commission_accrue()
        noop = time.perf_counter() - started
        if again != 0:
            raise SystemExit(f"rerun wrote {again} entries")
        rows.append((size, seconds, size / seconds, noop, seeded, total))
        print(f"{size}: {seconds:.1f} s", file=sys.stderr)

    print(f"batch size {settings.COMMISSIONS_ACCRUE_BATCH_SIZE} conversions per transaction\n")
    print("| approved conversions | accrual (s) | entries/s | rerun, nothing to do (s) |")
    print("| ---: | ---: | ---: | ---: |")
    for size, seconds, rate, noop, _seeded, _total in rows:
        print(f"| {size:,} | {seconds:.1f} | {rate:,.0f} | {noop:.1f} |")


if __name__ == "__main__":
    main()
