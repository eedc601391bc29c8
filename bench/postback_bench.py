"""Postback benchmark: wrk firing /postback at the production server (`scripts/serve.sh`), on this
machine. Run it with `make bench-postbacks` (or .venv/bin/python bench/postback_bench.py); it
needs `wrk` (Debian: apt-get install wrk).

It uses a database and a Redis db of its own (opencpa_bench_pb, dropped and re-created, and db
10), so it never touches the demo or the click benchmark. The network is the demo one (seed_demo:
an advertiser with a postback token, an offer whose default goal pays a fixed amount, an affiliate
with access); N real clicks on that offer are written straight into the partitioned click table
(the click store's COPY), and their ids into a file the wrk script (bench/postback.lua) reads.
No Celery worker runs: the tasks a conversion queues (affiliate postbacks, commission accrual)
wait in Redis, so the numbers are those of the web tier alone.

Three runs, wrk with 2 threads:
- paced (the target): a new conversion each, offered at a fixed 800/s (an open loop, as real
  advertisers' servers send: the next request does not wait for the last answer; 128
  connections so that one is always free) for 20 s. Reported: the rate served, p50/p99 at that
  load, and the sends the generator made more than 5 ms behind their slot (wrk times a request
  from its send, so a late send hides its delay; more than 0.1% late and the run is not a
  measurement of the latency at 800/s). The target is met when every postback offered is
  answered 200 accepted with its row in PostgreSQL, at the offered rate, with p99 under 50 ms;
- distinct (the capacity): wrk's closed loop at 64 connections, every connection firing again as
  soon as it has its answer; every request a click id and an order id of its own, so every
  answer must be a NEW conversion, committed in PostgreSQL before the answer. Reported:
  postbacks/s, p50/p99, the answers (200 accepted / duplicate, non-2xx), the conversions in
  PostgreSQL, and every accepted answer's conversion id checked against PostgreSQL (lost =
  accepted without a row). A closed loop keeps the server saturated, so its latency is the
  queue wrk builds (mean = connections / rate, Little's law), not the server's answer time;
- same: a retry storm, every request the same postback (same click id and order id): one
  conversion, every other answer 200 duplicate.

The server runs the production application inside bench/app_timing.py, which records each
request's time inside it: reported next to wrk's latency, which adds the time a request waited
for a free worker thread (a latency far above the time inside says the server was out of
capacity, not slow to answer).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _common import (
    PY,
    ROOT,
    UA,
    bench_env,
    django,
    process_stop,
    run,
    server_start,
    wait_http,
    wrk_counter,
    wrk_latency,
    wrk_rps,
    wrk_run,
    wrk_socket_errors,
)

DB_NAME = "opencpa_bench_pb"
REDIS_DB = 10
LUA = ROOT / "bench" / "postback.lua"
WARM_CLICKS = 20_000
COUNTERS = ("accepted", "duplicate", "other_2xx", "non_2xx", "wrapped", "late", "late_max_ms")
TARGET_RATE, TARGET_P99_MS = 800, 50


def _database_recreate(env: dict[str, str]) -> None:
    import psycopg

    admin = urlsplit(env["DATABASE_URL"])._replace(scheme="postgresql", path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def demo_network_create(env: dict[str, str]) -> dict[str, Any]:
    """The bench database from scratch (dropped, migrated, its Redis db emptied) with the demo
    network; returns seed_demo's JSON (ids, the advertiser's token)."""
    _database_recreate(env)
    run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], env)
    django(env, "from apps.common.redis import redis_client; redis_client().flushdb()")
    django(env, _PARTITIONS_AS_IN_PRODUCTION)
    return json.loads(run([PY, "manage.py", "seed_demo", "--json"], env))


# The daily click partitions a production database holds: those the retention keeps
# (CLICK_RETENTION_DAYS, 180 by default) and those made ahead, empty but for the last two days.
# A lookup by click id used to lock every one of them (apps.tracking.click_store.click_query):
# with ten, as migrate leaves, the bench hid that cost.
_PARTITIONS_AS_IN_PRODUCTION = """
from datetime import timedelta
from django.conf import settings
from django.utils import timezone
from apps.tracking.partitions import partition_ensure
today = timezone.now().date()
for days_ago in range(-settings.CLICK_PARTITIONS_AHEAD_DAYS, settings.CLICK_RETENTION_DAYS + 1):
    partition_ensure(today - timedelta(days=days_ago))
"""


def _analyze(env: dict[str, str]) -> None:
    """Statistics for the tables the warm-up filled, as autovacuum keeps them on a live database
    (a fresh table's planner estimates would pick the wrong indexes), and a checkpoint: the
    setup wrote ~200 MB of WAL (the clicks), which would otherwise set one off in the middle of
    a measured run in some runs and not others."""
    import psycopg

    url = urlsplit(env["DATABASE_URL"])._replace(scheme="postgresql").geturl()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
        conn.execute("CHECKPOINT")


def _clicks_create(
    env: dict[str, str],
    *,
    offer_id: int,
    affiliate_id: int,
    first: int,
    count: int,
    ids_file: Path,
) -> None:
    """`count` clicks on the offer, written with the click store's COPY, spread over the last
    ten minutes (each id carries its second, as the tracker makes them), with the device key the
    drain gives them; ids one a line. Click number i (from `first`) has a visitor IP of its own,
    so no quality signal sees a repeat."""
    code = f"""
from datetime import timedelta
from django.db import connection
from django.utils import timezone
from apps.tracking import click_store, partitions
from apps.tracking.click_ids import click_id_new
from apps.quality.leads import device_key
now = timezone.now()
for day in {{(now - timedelta(days=1)).date(), now.date()}}:
    partitions.partition_ensure(day)
batch = []
with open({str(ids_file)!r}, "w") as ids:
    for i in range({first}, {first + count}):
        created = now - timedelta(seconds=60 + i % 600, microseconds=i % 997)
        click_id = click_id_new(created)
        ids.write(click_id + "\\n")
        ip = "81.{{}}.{{}}.{{}}".format(i // 62500 % 250 + 1, i // 250 % 250 + 1, i % 250 + 1)
        batch.append({{
            "click_id": click_id, "offer_id": {offer_id}, "affiliate_id": {affiliate_id},
            "created_at": created, "ip": ip, "country": "GB", "user_agent": {UA!r},
            "device_type": "desktop", "os": "Windows", "browser": "Chrome", "is_unique": True,
            "sub1": "s" + str(i % 100), "ua_ip_hash": device_key({UA!r}, ip),
        }})
        if len(batch) == 10_000:
            click_store.clicks_insert(batch, replay=False)
            batch = []
click_store.clicks_insert(batch, replay=False)
with connection.cursor() as cursor:
    cursor.execute("ANALYZE tracking_click")
"""
    django(env, code)


def _wrk(
    base: str,
    seconds: int,
    connections: int,
    *,
    mode: str,
    ids_file: Path,
    tag: str,
    token: str,
    out_dir: Path,
    meter: CpuMeter,
    start: int = 0,
    rate: int = 0,
) -> dict[str, float]:
    for stale in out_dir.glob("accepted-*"):
        stale.unlink()
    threads = 2
    speed_before = host_speed_ms()
    stolen_before = _cpu_ticks()
    meter.start()
    window_start = time.monotonic()
    out = wrk_run(
        f"{base}/postback",
        seconds,
        connections,
        script=LUA,
        script_args=[mode, str(threads), str(ids_file), str(start), tag, token, str(out_dir)]
        + ([str(rate)] if rate else []),
        threads=threads,
        timeout=10,  # a slow answer is measured, not dropped at wrk's default 2 s
    )
    window = [window_start, time.monotonic()]
    meter.stop()
    stolen_after = _cpu_ticks()
    speed_after = host_speed_ms()
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    result: dict[str, float] = {
        "rps": wrk_rps(out),
        "p50": wrk_latency(out, "50%"),
        "p99": wrk_latency(out, "99%"),
    }
    for name in COUNTERS:
        result[name] = wrk_counter(out, f"COUNT_{name.upper()}")
    # Let the requests in flight when wrk stopped finish (about one p99) before counting rows.
    time.sleep(min(12.0, 1 + result["p99"] / 1000))
    result["requests"] = requests
    result["socket_errors"] = sum(wrk_socket_errors(out).values())
    result["web_cpu_ms"] = round(meter.web / max(requests, 1) * 1000, 2)
    result["postgres_cpu_ms"] = round(meter.postgres / max(requests, 1) * 1000, 2)
    result["host_speed_ms"] = round((speed_before + speed_after) / 2, 1)
    total = stolen_after[0] - stolen_before[0]
    result["steal_percent"] = round(100 * (stolen_after[1] - stolen_before[1]) / max(total, 1), 1)
    result["window"] = window  # type: ignore[assignment]
    return result


def _timed_server_env(env: dict[str, str], timing_dir: Path) -> dict[str, str]:
    """The server's environment with each request's time inside the application recorded
    (bench/app_timing.py) in `timing_dir`."""
    return {
        **env,
        "WSGI_APP": "app_timing:application",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)]),
        "APP_TIMING_DIR": str(timing_dir),
    }


def _app_times(timing_dir: Path, window: list[float]) -> dict[str, float]:
    """p50 and p99 of the time the requests that started within `window` spent inside the
    application: the server's own answer time, without the wait for a free worker thread that
    wrk's latency includes."""
    start, end = window
    taken = sorted(
        float(ms)
        for path in timing_dir.glob("*.txt")
        for at, ms in (line.split() for line in path.read_text().splitlines())
        if start <= float(at) <= end
    )
    if not taken:
        return {"app_p50": float("nan"), "app_p99": float("nan")}
    return {
        "app_p50": round(taken[int(0.50 * (len(taken) - 1))], 2),
        "app_p99": round(taken[int(0.99 * (len(taken) - 1))], 2),
    }


def _cpu_ticks() -> tuple[int, int]:
    """All CPU ticks and the stolen ones (time the hypervisor gave this VM's CPUs to others),
    from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(fields[:8]), fields[7]


def host_speed_ms() -> float:
    """CPU milliseconds a fixed pure-Python loop takes here and now (the median of three).
    This machine is a VM whose CPU time per unit of work was seen to double from one minute to
    the next with nothing else running: the figure goes next to every run, so that runs made at
    different moments can be compared (CPU per request divided by it)."""
    samples = []
    for _ in range(3):
        started, total = time.process_time(), 0
        for number in range(1_000_000):
            total += number * number
        samples.append((time.process_time() - started) * 1000)
    return sorted(samples)[1]


class CpuMeter:
    """CPU seconds (user + system) the web server's processes and the bench database's
    PostgreSQL backends use between start() and stop(): per postback, the cost that decides the
    throughput on a machine of N cores, whatever else runs on it."""

    def __init__(self, server_pgid: int):
        self.server_pgid = server_pgid
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.before: dict[int, float] = {}
        self.web = self.postgres = 0.0

    def _sample(self) -> dict[int, tuple[str, float]]:
        found: dict[int, tuple[str, float]] = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                stat = (proc / "stat").read_text()
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            pgid, cpu = int(fields[2]), (int(fields[11]) + int(fields[12])) / self.ticks
            if pgid == self.server_pgid:
                found[int(proc.name)] = ("web", cpu)
            elif cmdline.startswith("postgres:") and f" {DB_NAME} " in cmdline:
                found[int(proc.name)] = ("postgres", cpu)
        return found

    def start(self) -> None:
        self.before = {pid: cpu for pid, (_kind, cpu) in self._sample().items()}

    def stop(self) -> None:
        self.web = self.postgres = 0.0
        for pid, (kind, cpu) in self._sample().items():
            used = cpu - self.before.get(pid, 0.0)
            if kind == "web":
                self.web += used
            else:
                self.postgres += used


def _accepted_ids(out_dir: Path) -> list[int]:
    ids: list[int] = []
    for path in out_dir.glob("accepted-*"):
        ids += [int(line) for line in path.read_text().split()]
    return ids


def _conversions(
    env: dict[str, str], *, order_prefix: str, accepted: list[int], out_dir: Path
) -> dict[str, Any]:
    """Conversions of a run in PostgreSQL, and how many accepted answers have none."""
    ids_path = out_dir / "accepted-all.json"
    ids_path.write_text(json.dumps(accepted))
    code = f"""
import json
from collections import Counter
from apps.conversions.models import Conversion, InboundPostbackLog
accepted = json.load(open({str(ids_path)!r}))
run = Conversion.objects.filter(order_id__startswith={order_prefix!r})
found = set()
for start in range(0, len(accepted), 10_000):
    chunk = accepted[start:start + 10_000]
    found |= set(run.filter(pk__in=chunk).values_list("pk", flat=True))
print(json.dumps({{
    "conversions": run.count(),
    "accepted_without_row": len(set(accepted) - found),
    "log_rows": InboundPostbackLog.objects.filter(order_id__startswith={order_prefix!r}).count(),
    "statuses": dict(Counter(run.values_list("status", flat=True))),
}}))
"""
    return json.loads(django(env, code).strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--retry-seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    # One web process a core: 3 on 2 cores cost 30% more CPU a postback (context switches).
    parser.add_argument("--web-workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--port", type=int, default=8092)
    parser.add_argument("--clicks", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=TARGET_RATE)
    parser.add_argument("--rate-seconds", type=int, default=20)
    parser.add_argument("--rate-connections", type=int, default=128)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    env = bench_env(
        database=DB_NAME, redis_db=REDIS_DB, port=args.port, web_workers=args.web_workers
    )
    demo = demo_network_create(env)
    token = demo["advertiser_token"]
    work = Path(tempfile.mkdtemp(prefix="opencpa-pb-bench-"))
    warm_ids, run_ids, retry_ids = work / "warm.txt", work / "run.txt", work / "retry.txt"
    started = time.monotonic()
    sets = ((warm_ids, 0, WARM_CLICKS), (run_ids, WARM_CLICKS, args.clicks))
    for path, first, count in (*sets, (retry_ids, WARM_CLICKS + args.clicks, 1)):
        _clicks_create(
            env,
            offer_id=demo["offer_id"],
            affiliate_id=demo["affiliate_id"],
            first=first,
            count=count,
            ids_file=path,
        )
    clicks_seconds = time.monotonic() - started
    stamp = str(int(time.time()))
    load_before = round(os.getloadavg()[0], 2)
    timing_dir = work / "app-timing"
    timing_dir.mkdir()
    server = server_start(_timed_server_env(env, timing_dir), log=work / "server.log")
    try:
        wait_http(args.port)
        base = f"http://127.0.0.1:{args.port}"
        wrk = {"token": token, "out_dir": work, "meter": CpuMeter(server.pid)}
        # Warm-up: connections, catalogs, imports; on clicks of its own.
        _wrk(
            base, 3, args.connections, mode="distinct", ids_file=warm_ids, tag=f"warm{stamp}", **wrk
        )  # type: ignore[arg-type]
        _analyze(env)
        # The paced run takes the second half of the clicks, the closed loop the first half.
        paced_tag = f"paced{stamp}"
        paced = _wrk(
            base,
            args.rate_seconds,
            args.rate_connections,
            mode="distinct",
            ids_file=run_ids,
            tag=paced_tag,
            start=args.clicks // 2,
            rate=args.rate,
            **wrk,
        )  # type: ignore[arg-type]
        paced_db = _conversions(
            env, order_prefix=f"{paced_tag}-", accepted=_accepted_ids(work), out_dir=work
        )
        tag = f"run{stamp}"
        distinct = _wrk(
            base, args.seconds, args.connections, mode="distinct", ids_file=run_ids, tag=tag, **wrk
        )  # type: ignore[arg-type]
        distinct_db = _conversions(
            env, order_prefix=f"{tag}-", accepted=_accepted_ids(work), out_dir=work
        )
        retry_tag = f"retry{stamp}"
        retry = _wrk(
            base,
            args.retry_seconds,
            args.connections,
            mode="same",
            ids_file=retry_ids,
            tag=retry_tag,
            **wrk,
        )  # type: ignore[arg-type]
        retry_db = _conversions(
            env, order_prefix=retry_tag, accepted=_accepted_ids(work), out_dir=work
        )
    finally:
        process_stop(server)
    for measured in (paced, distinct, retry):
        measured.update(_app_times(timing_dir, measured.pop("window")))  # type: ignore[arg-type]
    errors = [
        line
        for line in (work / "server.log").read_text().splitlines()
        if "Traceback" in line or "ERROR" in line
    ]
    result = {
        "machine": f"{os.cpu_count()} cores, {platform.machine()}",
        "load_average_before": load_before,
        "seconds": args.seconds,
        "retry_seconds": args.retry_seconds,
        "connections": args.connections,
        "web_workers": args.web_workers,
        "clicks": args.clicks + WARM_CLICKS + 1,
        "clicks_insert_seconds": round(clicks_seconds, 1),
        "rate": args.rate,
        "rate_connections": args.rate_connections,
        "rate_seconds": args.rate_seconds,
        "paced": {
            **paced,
            **paced_db,
            "in_flight_at_stop": max(0, paced_db["conversions"] - int(paced["accepted"])),
        },
        "distinct": {
            **distinct,
            **distinct_db,
            # wrk stops with up to one request per connection in flight: the server answered (and
            # recorded) them, wrk did not count them. So conversions may exceed accepted answers
            # by <= connections; one is lost only when an accepted answer has no row.
            "in_flight_at_stop": max(0, distinct_db["conversions"] - int(distinct["accepted"])),
        },
        "retry": {**retry, **retry_db},
        "server_log_errors": len(errors),
        "work_dir": str(work),
    }
    print(json.dumps(result, indent=2))
    print(_table(result))
    verdict = _target_verdict(result["paced"], rate=args.rate)
    print(f"\ntarget (>= {TARGET_RATE} postbacks/s, p99 < {TARGET_P99_MS} ms): {verdict}")


def _target_verdict(paced: dict[str, Any], *, rate: int) -> str:
    """'met', or 'NOT met' with every reason, for the paced run at `rate` postbacks/s."""
    failures = [
        reason
        for failed, reason in (
            (rate < TARGET_RATE, f"offered {rate}/s, below the target's rate"),
            (paced["rps"] < 0.98 * rate, f"served {paced['rps']:.0f}/s of {rate}/s offered"),
            (not paced["p99"] < TARGET_P99_MS, f"p99 {paced['p99']:.1f} ms"),
            (
                paced["late"] > paced["requests"] / 1000,
                f"{paced['late']} sends late, over 0.1% (the generator fell behind)",
            ),
            (paced["non_2xx"] + paced["socket_errors"] > 0, "refused or unanswered requests"),
            (paced["accepted_without_row"] > 0, "accepted answers without a conversion row"),
            (paced["duplicate"] + paced["other_2xx"] > 0, "answers other than accepted"),
        )
        if failed
    ]
    return "met" if not failures else "NOT met: " + "; ".join(failures)


def _ceiling(run: dict) -> float:
    """Requests/s this machine could serve if the web tier and PostgreSQL had every core to
    themselves (no wrk, nothing else running): a figure that other load on the host skews less
    than the measured rate."""
    per_request = (run["web_cpu_ms"] + run["postgres_cpu_ms"]) / 1000
    return (os.cpu_count() or 1) / per_request if per_request else float("nan")


def _table(r: dict) -> str:
    p, d, s = r["paced"], r["distinct"], r["retry"]

    def row(label: str, key: str, suffix: str = "") -> str:
        return f"| {label} | {p[key]}{suffix} | {d[key]}{suffix} | {s[key]}{suffix} |"

    return "\n".join(
        [
            f"| what (wrk, 2 threads, {r['web_workers']} web workers, {r['machine']}, load "
            f"average {r['load_average_before']} before) | postbacks/s | p50 ms | p99 ms |",
            "|---|---:|---:|---:|",
            f"| `/postback`, a new conversion each, offered at {r['rate']}/s (open loop, "
            f"{r['rate_connections']} connections, {r['rate_seconds']} s) | {p['rps']:.0f} "
            f"| {p['p50']:.2f} | {p['p99']:.2f} |",
            f"| `/postback`, a new conversion each, as fast as it answers (closed loop, "
            f"{r['connections']} connections, {r['seconds']} s) | {d['rps']:.0f} "
            f"| {d['p50']:.2f} | {d['p99']:.2f} |",
            f"| `/postback`, one postback retried (closed loop, {r['connections']} connections, "
            f"{r['retry_seconds']} s) | {s['rps']:.0f} | {s['p50']:.2f} | {s['p99']:.2f} |",
            "",
            f"| postback accounting | new conversion each at {r['rate']}/s "
            "| new conversion each, closed loop | same postback retried |",
            "|---|---:|---:|---:|",
            row("answers 200 accepted", "accepted"),
            row("answers 200 duplicate", "duplicate"),
            row("non-2xx answers", "non_2xx"),
            row("other 2xx answers", "other_2xx"),
            row("no answer (wrk socket errors, timeouts at 10 s)", "socket_errors"),
            row("conversions in PostgreSQL", "conversions"),
            row("lost (accepted answers without a conversion row)", "accepted_without_row"),
            f"| conversions from requests in flight when wrk stopped (<= connections) "
            f"| {p['in_flight_at_stop']} | {d['in_flight_at_stop']} | |",
            row("inbound log rows", "log_rows"),
            f"| requests that had to reuse a click (ran out of clicks) | {p['wrapped']} "
            f"| {d['wrapped']} | |",
            f"| sends more than 5 ms behind the open loop's schedule (the latest's delay) "
            f"| {p['late']} ({p['late_max_ms']} ms) | | |",
            f"| time inside the application per request, p50 / p99 (wrk's latency adds the wait "
            f"for a free worker thread) | {p['app_p50']} / {p['app_p99']} ms "
            f"| {d['app_p50']} / {d['app_p99']} ms | {s['app_p50']} / {s['app_p99']} ms |",
            row("server CPU per request: web workers", "web_cpu_ms", " ms"),
            row("server CPU per request: PostgreSQL", "postgres_cpu_ms", " ms"),
            f"| CPU-bound ceiling on {os.cpu_count()} cores (cores / CPU per request) "
            f"| | {_ceiling(d):.0f}/s | {_ceiling(s):.0f}/s |",
            row(
                "host speed: CPU ms of a fixed Python loop around the run (lower is faster)",
                "host_speed_ms",
            ),
            row("CPU time stolen by the hypervisor during the run", "steal_percent", "%"),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
