"""What one new-conversion postback costs in CPU, without HTTP or other processes: the
production WSGI application (config/wsgi.py) called in a loop in this process, one thread, on
the postback benchmark's database. Run it with `.venv/bin/python bench/postback_inprocess.py`.

It sets up as bench/postback_bench.py does (its own database, opencpa_bench_pb, dropped and
re-created; the demo network; real clicks written with the click store's COPY), then calls the
application with GET /postback for a new click and order id each, `--rounds` times
`--postbacks` calls, and reports per postback: the web CPU (this process), the PostgreSQL CPU
(its backend, from /proc) and the wall time. Rounds run back to back, so their spread shows how
much the machine itself moved meanwhile: compare two versions of the code in alternating runs,
never against a figure from another hour.

`--against REV` does that: it checks REV out in a temporary git worktree and measures this
checkout and REV in turn, `--pairs` times, each on a database set up afresh (by this checkout's
setup: REV must have the same migrations). On this kind of machine the cost of everything moves
by a third within minutes, so each round is also reported as PostgreSQL CPU over web CPU: a
slow moment slows both alike, and a change to one side shows in the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from _common import ROOT, bench_env, django
from postback_bench import DB_NAME, REDIS_DB, _analyze, _clicks_create, demo_network_create

WARM = 2000  # postbacks before ANALYZE, as the HTTP benchmark's warm-up

_LOOP = """
import json, os, sys, time
sys.path.insert(0, {root!r})
from config.wsgi import application
from django.db import connection

ids = open({ids!r}).read().split()[{first}:]
tag = "inproc%d" % time.time()


def call(number):
    environ = {{
        "REQUEST_METHOD": "GET", "PATH_INFO": "/postback", "SCRIPT_NAME": "",
        "QUERY_STRING": f"click_id={{ids[number]}}&token={token}&order_id={{tag}}-{{number}}"
                        "&amount=10.00",
        "REMOTE_ADDR": "127.0.0.1", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }}
    statuses = []
    body = b"".join(application(environ, lambda status, headers: statuses.append(status)))
    if not statuses[0].startswith("200") or b'"accepted"' not in body:
        raise SystemExit(f"postback {{number}} was not accepted: {{statuses[0]}} {{body!r}}")


def backend_cpu(pid):
    stat = open(f"/proc/{{pid}}/stat").read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


for number in range({warm}):
    call(number)
if not {rounds}:
    raise SystemExit(0)
with connection.cursor() as cursor:
    cursor.execute("SELECT pg_backend_pid()")
    pid = cursor.fetchone()[0]
rounds, number = [], {warm}
for _ in range({rounds}):
    wall, cpu, pg = time.perf_counter(), time.process_time(), backend_cpu(pid)
    for _ in range({postbacks}):
        call(number)
        number += 1
    count = {postbacks} / 1000
    rounds.append({{
        "web_cpu_ms": round((time.process_time() - cpu) / count, 3),
        "postgres_cpu_ms": round((backend_cpu(pid) - pg) / count, 3),
        "wall_ms": round((time.perf_counter() - wall) / count, 3),
    }})
print(json.dumps({{"python": sys.version.split()[0], "rounds": rounds}}))
"""


def _measure(args: argparse.Namespace, *, root: Path) -> list[dict[str, float]]:
    """Set the bench database up afresh, then the rounds of the loop on the code in `root`."""
    env = bench_env(database=DB_NAME, redis_db=REDIS_DB, port=0, web_workers=1)
    demo = demo_network_create(env)
    ids_file = Path(tempfile.mkdtemp(prefix="opencpa-pb-inproc-")) / "clicks.txt"
    _clicks_create(
        env,
        offer_id=demo["offer_id"],
        affiliate_id=demo["affiliate_id"],
        first=0,
        count=WARM + 100 + args.rounds * args.postbacks,
        ids_file=ids_file,
    )
    loop = {"root": str(root), "ids": str(ids_file), "token": demo["advertiser_token"]}
    # A warm-up on clicks of its own, then statistics for the tables it filled (as autovacuum
    # keeps them on a live database), then the measured process: a new connection, whose
    # prepared statements are planned on those statistics.
    django(env, _LOOP.format(**loop, first=0, warm=WARM, rounds=0, postbacks=0), root=root)
    _analyze(env)
    code = _LOOP.format(**loop, first=WARM, warm=100, rounds=args.rounds, postbacks=args.postbacks)
    result = json.loads(django(env, code, root=root).strip().splitlines()[-1])
    rounds: list[dict[str, float]] = result["rounds"]
    for one in rounds:
        one["pg_over_web"] = round(one["postgres_cpu_ms"] / one["web_cpu_ms"], 3)
    return rounds


def _table(rows: list[tuple[str, int, dict[str, float]]]) -> None:
    print("| code | round | web CPU ms | PostgreSQL CPU ms | PostgreSQL / web | wall ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, number, one in rows:
        print(
            f"| {label} | {number} | {one['web_cpu_ms']} | {one['postgres_cpu_ms']} | "
            f"{one['pg_over_web']} | {one['wall_ms']} |"
        )


def _compare(args: argparse.Namespace) -> None:
    """This checkout and `args.against`, alternately; the medians of every round of each."""
    worktree = Path(tempfile.mkdtemp(prefix="opencpa-pb-against-")) / "tree"
    git = ["git", "-C", str(ROOT)]
    subprocess.run([*git, "worktree", "add", "--detach", str(worktree), args.against], check=True)
    try:
        codes = (("this checkout", ROOT), (args.against, worktree))
        # Each pair in the other order: a drift over the run favours neither side.
        rows = [
            (label, number, one)
            for pair in range(args.pairs)
            for label, root in (codes if pair % 2 == 0 else codes[::-1])
            for number, one in enumerate(_measure(args, root=root), 1)
        ]
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(worktree)], check=True)
    _table(rows)
    print()
    print("| code | rounds | web CPU ms | PostgreSQL CPU ms | PostgreSQL / web (median) |")
    print("|---|---:|---:|---:|---:|")
    for label, _root in codes:
        mine = [one for row_label, _n, one in rows if row_label == label]
        medians = [
            statistics.median(one[key] for one in mine)
            for key in ("web_cpu_ms", "postgres_cpu_ms", "pg_over_web")
        ]
        print(f"| {label} | {len(mine)} | " + " | ".join(f"{m:.3f}" for m in medians) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postbacks", type=int, default=2500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", help="a git revision to compare this checkout with")
    parser.add_argument("--pairs", type=int, default=3, help="alternations with --against")
    args = parser.parse_args()
    if args.against:
        _compare(args)
        return
    rounds = _measure(args, root=ROOT)
    print(json.dumps({"rounds": rounds}, indent=2))
    _table([("this checkout", number, one) for number, one in enumerate(rounds, 1)])


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
