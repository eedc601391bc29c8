"""Commission accrual benchmark: N approved conversions -> N ledger entries, timed.

Run it with `.venv/bin/python bench/commissions_bench.py` (default sizes 250000,500000,1000000;
`--tiers-referrals` adds a volume tier and referrers). It uses a database of its own,
opencpa_bench_commissions (dropped and re-created), on the server of DATABASE_URL. Conversions are
generated in PostgreSQL with generate_series (1,000 affiliates, one offer with a 7-day hold,
payouts 0.01..99.99 USD); the database trigger queues them for accrual as they are inserted.

Timed per size, over an empty ledger unless said:
- queue: the beat job, `commission_accrue_queued()`, working the N queued conversions;
- idle queue run: the beat job again with nothing queued (what it costs every minute);
- 1,000 changed: 500 conversions rejected and 500 new ones, then the beat job;
- rescan, nothing to do: `commission_accrue()` over all N with every entry already there;
- full rescan: the ledger emptied, then `commission_accrue()` (the by-hand `--full`).
Reported as markdown.

With `--tiers-referrals`: a tier on the offer (from the 100th approved conversion of a month,
150.00, above every payout) and every odd affiliate referred by the one before it at 5 %.
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
    # Distinct times, 10 ms apart, ending a day ago (the order volume tiers count in).
    "created_at": "now() - interval '1 day' - (%(n)s - g) * interval '10 milliseconds'",
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


def _timed(job):
    started = time.perf_counter()
    result = job()
    return result, time.perf_counter() - started


def _scalar(sql: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql)
        return int(cursor.fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="250000,500000,1000000")
    parser.add_argument(
        "--tiers-referrals",
        action="store_true",
        help="a volume tier on the offer and referrers for half the affiliates",
    )
    args = parser.parse_args()
    _setup_django()

    from django.conf import settings
    from django.db import connection

    from apps.advertisers.models import Advertiser
    from apps.commissions.selectors import ledger_check
    from apps.commissions.services import commission_accrue, commission_accrue_queued
    from apps.offers.models import Goal, Offer, PayoutTier
    from apps.partners.models import Affiliate

    advertiser = Advertiser.objects.create(name="bench")
    offer = Offer.objects.create(
        advertiser=advertiser, name="bench", destination_url="https://example.com/", hold_days=7
    )
    goal = Goal.objects.create(offer=offer, code="sale", name="sale", is_default=True)
    affiliates = Affiliate.objects.bulk_create(Affiliate(name=f"a{i}") for i in range(1000))
    if args.tiers_referrals:
        PayoutTier.objects.create(offer=offer, name="Gold", threshold=100, payout=150)
        for referrer, referred in zip(affiliates[::2], affiliates[1::2], strict=True):
            Affiliate.objects.filter(pk=referred.pk).update(referrer=referrer, referral_percent=5)
    params = {"offer": offer.pk, "goal": goal.pk, "affiliate_base": affiliates[0].pk}
    insert = _conversion_insert_sql()
    tables = "commissions_ledgerentry, commissions_tierreached, commissions_accrualqueue"

    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {tables}, conversions_conversion CASCADE")
            started = time.perf_counter()
            cursor.execute(insert, {**params, "n": size})
            cursor.execute("VACUUM ANALYZE conversions_conversion")
            cursor.execute("ANALYZE commissions_accrualqueue")
            seeded = time.perf_counter() - started

        run, queued = _timed(commission_accrue_queued)
        entries = _scalar("SELECT count(*) FROM commissions_ledgerentry")
        if not (run.conversions == size and run.written == entries) or (
            not args.tiers_referrals and entries != size
        ):
            raise SystemExit(f"wrong ledger: {run=} {size=} {entries=}")
        again, idle = _timed(commission_accrue_queued)
        if again.written != 0:
            raise SystemExit(f"idle run wrote {again.written} entries")

        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE conversions_conversion SET status = 'rejected'"
                " WHERE id IN (SELECT id FROM conversions_conversion ORDER BY id LIMIT 500)"
            )
            cursor.execute(insert.replace("'o' || g", "'n' || g"), {**params, "n": 500})
        changed, small = _timed(commission_accrue_queued)
        if changed.conversions != 1000:
            raise SystemExit(f"1,000 changes, {changed.conversions} accrued")

        rescan, noop = _timed(commission_accrue)
        if rescan != 0:
            raise SystemExit(f"rescan wrote {rescan} entries")
        drifts = ledger_check()
        if drifts:
            raise SystemExit(f"ledger drift: {drifts}")

        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {tables} CASCADE")
        written, full = _timed(commission_accrue)
        # 500 rejected before they were ever credited (nothing), 500 new ones.
        if not args.tiers_referrals and written != size:
            raise SystemExit(f"full rescan wrote {written} entries, not {size}")
        rows.append((size, seeded, queued, entries / queued, idle, small, noop, full, entries))
        print(f"{size}: queue {queued:.1f} s, full {full:.1f} s", file=sys.stderr)

    mode = "with a volume tier and referrers" if args.tiers_referrals else "no tiers, no referrals"
    print(
        f"batch size {settings.COMMISSIONS_ACCRUE_BATCH_SIZE} conversions per transaction; {mode}\n"
    )
    print(
        "| approved conversions | entries | accrual, beat job from the queue (s) | entries/s"
        " | idle beat run (ms) | 1,000 changed (ms) | rescan, nothing to do (s)"
        " | full rescan, empty ledger (s) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size, _seeded, queued, rate, idle, small, noop, full, entries in rows:
        print(
            f"| {size:,} | {entries:,} | {queued:.1f} | {rate:,.0f} | {idle * 1000:.1f}"
            f" | {small * 1000:.0f} | {noop:.1f} | {full:.1f} |"
        )


if __name__ == "__main__":
    main()
