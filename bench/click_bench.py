"""Click pipeline benchmark: wrk against the production server (`scripts/serve.sh`), with the
Celery drain running, on this machine. Run it with `make bench` (or .venv/bin/python
bench/click_bench.py); it needs `wrk` (Debian: apt-get install wrk).

It uses a database and a Redis db of its own (opencpa_bench, db 9), so it never touches the demo.
Reported:
- clicks/s and p50/p99 latency for /click at 64 connections, and the same for a bare Django view
  that only answers 302 under the same server (the framework's ceiling), and their ratio;
- 302s counted by wrk versus click rows in PostgreSQL after the drain (lost = difference);
- the drain: the oldest undrained click's age during the load (click-to-row lag) and, separately,
  how many buffered rows per second it moves into PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import (
    PY,
    ROOT,
    UA,
    bench_env,
    process_stop,
    server_start,
    wrk_counter,
    wrk_latency,
    wrk_rps,
    wrk_run,
)
from _common import django as _django
from _common import run as _run
from _common import wait_http as _wait_http


def _env(args: argparse.Namespace) -> dict[str, str]:
    return bench_env(
        database="opencpa_bench", redis_db=9, port=args.port, web_workers=args.web_workers
    )


def _wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    out = wrk_run(url, seconds, connections, script=ROOT / "bench" / "count_302.lua")
    return {
        "rps": wrk_rps(out),
        "p50": wrk_latency(out, "50%"),
        "p99": wrk_latency(out, "99%"),
        "count_302": wrk_counter(out, "COUNT_302"),
        "count_other": wrk_counter(out, "COUNT_OTHER"),
    }


class LagSampler(threading.Thread):
    """Samples the age of the oldest click not yet in PostgreSQL (stream entry ids are ms)."""

    def __init__(self, redis_url: str):
        super().__init__(daemon=True)
        import redis

        self.client = redis.Redis.from_url(redis_url)
        self.max_lag = 0.0
        self.max_backlog = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            first = self.client.xrange("clicks:stream", count=1)
            backlog = self.client.xlen("clicks:stream")
            if first:
                entry_ms = int(first[0][0].split(b"-")[0])
                self.max_lag = max(self.max_lag, time.time() - entry_ms / 1000)
            self.max_backlog = max(self.max_backlog, backlog)
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--drain-rows", type=int, default=200_000)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    env = _env(args)
    _run([PY, "scripts/create_db.py"], env)
    _run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], env)
    _django(env, "from apps.common.redis import redis_client; redis_client().flushdb()")
    demo = json.loads(_run([PY, "manage.py", "seed_demo", "--json"], env))
    offer_id, affiliate_id = demo["offer_id"], demo["affiliate_id"]
    start = _django(env, "from django.utils import timezone; print(timezone.now().isoformat())")

    server = server_start(env)
    worker = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/celery"),
            "-A",
            "config",
            "worker",
            "-Q",
            "clicks",
            "-B",
            "--concurrency",
            "1",
            "--loglevel",
            "WARNING",
            "--schedule",
            str(Path(tempfile.gettempdir()) / "opencpa-bench-beat"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_http(args.port)
        base = f"http://127.0.0.1:{args.port}"
        click_url = f"{base}/click?offer_id={offer_id}&aff_id={affiliate_id}&sub1=bench"
        _wrk(click_url, 3, args.connections)  # warm-up: catalogs, connections
        _wrk(f"{base}/bench/bare-302", 3, args.connections)
        bare = _wrk(f"{base}/bench/bare-302", args.seconds, args.connections)
        warm_rows = _count_rows(env, offer_id, start, wait=True)
        sampler = LagSampler(env["REDIS_URL"])
        sampler.start()
        click = _wrk(click_url, args.seconds, args.connections)
        drain_wait_started = time.monotonic()
        rows = _count_rows(env, offer_id, start, wait=True) - warm_rows
        drained_after = time.monotonic() - drain_wait_started
        sampler.stop.set()
        sampler.join()
    finally:
        for process in (server, worker):
            process_stop(process)
    drain_rate = _drain_rate(env, offer_id, affiliate_id, args.drain_rows)
    result = {
        "machine": f"{os.cpu_count()} cores",
        "seconds": args.seconds,
        "connections": args.connections,
        "web_workers": args.web_workers,
        "bare": bare,
        "click": click,
        "ratio": click["rps"] / bare["rps"],
        "rows_in_postgres": rows,
        # wrk stops with up to one request per connection in flight: the server answered (and
        # recorded) them, wrk did not count them. So rows may exceed 302s by <= connections; a
        # click is lost only when a counted 302 has no row.
        "lost": max(0, click["count_302"] - rows),
        "in_flight_at_stop": max(0, rows - click["count_302"]),
        "max_lag_seconds": round(sampler.max_lag, 2),
        "max_backlog": sampler.max_backlog,
        "drained_after_load_seconds": round(drained_after, 2),
        "drain_rows_per_second": drain_rate,
    }
    print(json.dumps(result, indent=2))
    print(_table(result))


def _count_rows(env: dict[str, str], offer_id: int, start: str, *, wait: bool) -> int:
    """Rows for the bench offer, after the buffer is empty (waits for the drain)."""
    code = f"""
import time
from apps.common.redis import redis_client
from apps.tracking.models import Click
r = redis_client()
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    pending = r.xpending('clicks:stream', 'drain')['pending'] if r.exists('clicks:stream') else 0
    if r.xlen('clicks:stream') == 0 and pending == 0:
        break
    time.sleep(0.2)
print(Click.objects.filter(offer_id={offer_id}, created_at__gte='{start.strip()}',
                           fallback_reason='').count())
"""
    return int(_django(env, code).strip().splitlines()[-1])


def _drain_rate(env: dict[str, str], offer_id: int, affiliate_id: int, count: int) -> float:
    """Rows per second the drain moves into PostgreSQL from a full buffer (in one process)."""
    code = f"""
import json, time
from django.utils import timezone
from apps.common.redis import redis_client
from apps.tracking.click_ids import click_id_new
from apps.tracking.drain import clicks_drain
r = redis_client()
now = timezone.now()
pipe = r.pipeline(transaction=False)
for i in range({count}):
    click = {{"click_id": click_id_new(now), "offer_id": {offer_id}, "affiliate_id": {affiliate_id},
             "created_at": now.isoformat(), "ip": "81.2.69.{{}}".format(i % 250),
             "country": "GB", "user_agent": "{UA} r" + str(i % 50), "sub1": "s" + str(i % 100)}}
    pipe.xadd("clicks:stream", {{"c": json.dumps(click), "u": 1}})
    if i % 5000 == 4999:
        pipe.execute()
pipe.execute()
started = time.perf_counter()
moved = clicks_drain()
elapsed = time.perf_counter() - started
print(round(moved / elapsed))
"""
    return float(_django(env, code).strip().splitlines()[-1])


def _table(r: dict) -> str:
    bare, click = r["bare"], r["click"]
    return "\n".join(
        [
            f"| what (wrk, 2 threads, {r['connections']} connections, {r['seconds']} s, "
            f"{r['web_workers']} web workers) | req/s | p50 ms | p99 ms |",
            "|---|---:|---:|---:|",
            f"| `/click` (buffer + drain running) | {click['rps']:.0f} | {click['p50']:.2f} "
            f"| {click['p99']:.2f} |",
            f"| bare Django 302 view, same server | {bare['rps']:.0f} | {bare['p50']:.2f} "
            f"| {bare['p99']:.2f} |",
            f"| `/click` / bare | {r['ratio']:.0%} | | |",
            "",
            "| click accounting | value |",
            "|---|---:|",
            f"| 302s counted by wrk | {click['count_302']} |",
            f"| rows in PostgreSQL after the drain | {r['rows_in_postgres']} |",
            f"| lost (302s without a row) | {r['lost']} |",
            f"| rows from requests in flight when wrk stopped (<= connections) "
            f"| {r['in_flight_at_stop']} |",
            f"| oldest undrained click during the load (lag) | {r['max_lag_seconds']} s |",
            f"| largest backlog | {r['max_backlog']} |",
            f"| drain rate from a full buffer | {r['drain_rows_per_second']:.0f} rows/s |",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
