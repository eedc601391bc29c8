"""Lead-quality simulator: labelled normal and fraudulent traffic through the real HTTP endpoints.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/opencpa_qsim \
    TEST_REDIS_URL=redis://127.0.0.1:6379/9 .venv/bin/python bench/quality_sim.py

What it does, honestly:
- Creates (with the ORM, setup only) one advertiser, one lead offer targeted at GB, affiliates and
  their access, on a database of its own (migrated here; all conversions from earlier runs are
  deleted first).
- Serves the real Django app (WSGI, threaded, like Django's live server) on 127.0.0.1 and sends
  every click to GET /click and every conversion to GET /postback with `requests`. Shoppers' IPs
  go in X-Forwarded-For (127.0.0.1 is a trusted proxy by default); user agents are real browser
  strings for people and real bot strings for bots. The click drain (apps.tracking.drain) runs in a
  thread, as the Celery beat job would.
- Time is compressed by --scale (default 1/500): every simulated delay between a click and its
  postback is slept for delay x scale, and the lead goal's timings are configured to the same
  scale (min 15 s -> 30 ms, plausible max 24 h -> 172.8 s). Nothing else is configured: weights,
  bands and thresholds are the defaults. The behavioural re-score (the beat job
  quality.rescore_offer) is run once at the end, in process.
- Clicks arrive over 12 simulated hours; the behavioural windows (24 h, 1 h spike) are real time.
- Normal shoppers: GB residential IPs (checked against the bundled GeoIP/ASN data: GB, not a
  hosting ASN), browser UAs, valid emails and GB mobile numbers, click-to-lead times log-normal
  around 3 minutes (25 s .. 2 h), ~10% conversion rate over 30 sub ids.
- A conversion counts as flagged when its final quality_score is below the offer's hold threshold
  (50 by default): it was held, rejected, or (approved before the re-score) given a note.
"""

from __future__ import annotations

import argparse
import heapq
import ipaddress
import math
import os
import random
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/opencpa_qsim")

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.82 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0.6312.99 Mobile Safari/537.36",
]
BOTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/"
    "124.0.0.0 Safari/537.36",
    "python-requests/2.31.0",
    "curl/8.5.0",
    "Mozilla/5.0 (compatible; PhantomJS/2.1.1)",
]
# Candidate blocks, kept only where the bundled data says GB + not hosting (residential) or
# hosting (data centre). UK consumer ISPs and mobile networks; UK cloud regions.
HOME_BLOCKS = ["86.0.0.0/11", "81.2.64.0/18", "92.40.0.0/16", "31.48.0.0/13", "2.24.0.0/13"]
DC_BLOCKS = ["3.8.0.0/14", "46.101.0.0/16", "35.176.0.0/15", "18.130.0.0/16", "178.62.0.0/17"]
FIRST = ["james", "olivia", "amelia", "harry", "jack", "isla", "noah", "ava", "leo", "mia"]
LAST = ["smith", "jones", "taylor", "brown", "wilson", "evans", "thomas", "roberts", "khan"]
MAILS = ["gmail.com", "outlook.com", "yahoo.co.uk", "hotmail.co.uk", "icloud.com", "btinternet.com"]


@dataclass
class Session:
    pattern: str  # "normal" or a fraud pattern
    affiliate: int
    sub1: str
    ip: str
    ua: str
    start: float  # simulated seconds after the run starts
    delay: float | None  # simulated click-to-postback seconds; None: no conversion
    conversion_ip: str | None = None
    email: str = ""
    phone: str = ""


def _pool(blocks: list[str], n: int, *, hosting: bool, rng: random.Random) -> list[str]:
    from apps.quality.hosting import asn_is_hosting, asn_name_for_ip
    from apps.tracking.enrichment import country_for_ip

    networks = [ipaddress.ip_network(b) for b in blocks]
    found: list[str] = []
    while len(found) < n:
        net = rng.choice(networks)
        ip = str(net[rng.randrange(1, net.num_addresses - 1)])
        if asn_is_hosting(asn_name_for_ip(ip)) != hosting:
            continue
        if country_for_ip(ip) != "GB":  # the offer targets GB: other clicks never convert
            continue
        found.append(ip)
    return found


def _human_delay(rng: random.Random) -> float:
    return min(7200.0, max(25.0, math.exp(rng.gauss(math.log(180), 0.8))))


def _person(rng: random.Random) -> tuple[str, str]:
    import phonenumbers

    name = f"{rng.choice(FIRST)}.{rng.choice(LAST)}{rng.randrange(10, 9999)}"
    while True:
        phone = f"+447{rng.randrange(400, 999)}{rng.randrange(0, 999999):06d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(phone)):
            return f"{name}@{rng.choice(MAILS)}", phone


def build_traffic(rng: random.Random, normal_affiliates: list[int], fraud: int) -> list[Session]:
    homes = _pool(HOME_BLOCKS, 4000, hosting=False, rng=rng)
    dcs = _pool(DC_BLOCKS, 200, hosting=True, rng=rng)
    home = iter(homes)
    sessions: list[Session] = []
    span = 12 * 3600.0  # clicks arrive over twelve simulated hours

    def human(pattern: str, sub1: str, *, converts: bool, affiliate: int, **kw: object) -> Session:
        email, phone = _person(rng)
        return Session(
            pattern=pattern,
            affiliate=affiliate,
            sub1=sub1,
            ip=str(kw.pop("ip", None) or next(home)),
            ua=str(kw.pop("ua", None) or rng.choice(BROWSERS)),
            start=float(kw.pop("start", rng.uniform(0, span))),  # type: ignore[arg-type]
            delay=kw.pop("delay", _human_delay(rng)) if converts else None,  # type: ignore[arg-type]
            email=str(kw.pop("email", email)),
            phone=str(kw.pop("phone", phone)),
        )

    # Normal: 30 sub ids over the normal affiliates, ~10% CR.
    for i in range(2500):
        aff = normal_affiliates[i % len(normal_affiliates)]
        sessions.append(human("normal", f"n{i % 30}", converts=rng.random() < 0.10, affiliate=aff))
    # Click injection: the click fires seconds before an install/lead the affiliate did not cause.
    for i in range(40):
        sessions.append(
            human(
                "click_injection",
                f"inj{i % 4}",
                converts=True,
                affiliate=fraud,
                delay=rng.uniform(1, 8),
            )
        )
    # Click spamming: many background clicks; organic leads land hours later on them.
    for i in range(400):
        sessions.append(
            human(
                "click_spamming",
                f"spam{i % 3}",
                converts=i < 36,
                affiliate=fraud,
                start=rng.uniform(0, 600),
                delay=rng.uniform(1.2 * 3600, 12 * 3600),
            )
        )
    # Bot farm: headless browsers and scripts from cloud machines, human-looking timings.
    for i in range(40):
        sessions.append(
            human(
                "bot_farm",
                f"bot{i % 4}",
                converts=True,
                affiliate=fraud,
                ua=rng.choice(BOTS),
                ip=rng.choice(dcs),
            )
        )
    # Duplicate IPs: six leads each from five home connections.
    dup_ips = [next(home) for _ in range(5)]
    for i in range(30):
        sessions.append(
            human("duplicate_ips", f"dup{i % 5}", converts=True, affiliate=fraud, ip=dup_ips[i % 5])
        )
    # Data-centre IPs with browser user agents (proxies/VPS pretending to be shoppers).
    for i in range(40):
        sessions.append(
            human(
                "datacenter_ips",
                f"dc{i % 4}",
                converts=True,
                affiliate=fraud,
                ip=dcs[(i * 7) % len(dcs)],
            )
        )
    # Fake leads: real clicks, but junk or recycled lead data.
    reused_email, reused_phone = _person(rng)
    for i in range(40):
        kind = i % 4
        email, phone = _person(rng)
        if kind == 0:
            email = f"{email.split('@')[0]}@{rng.choice(['mailinator.com', 'yopmail.com'])}"
        elif kind == 1:
            email = rng.choice(["asdf", "test@test", "a@b.c", "qwerty@"])
        elif kind == 2:
            phone = rng.choice(["0123456789", "+441111111111", "5555555", "07000000000"])
        else:
            email, phone = reused_email, reused_phone
        sessions.append(
            human(
                "fake_leads", f"fl{i % 4}", converts=True, affiliate=fraud, email=email, phone=phone
            )
        )
    # Incentivised burst: real people paid to sign up, 60 clicks and 42 leads within minutes.
    burst = rng.uniform(0, span - 900)
    for i in range(60):
        sessions.append(
            human(
                "incentivised_bursts",
                "reward-wall",
                converts=i < 42,
                affiliate=fraud,
                start=burst + rng.uniform(0, 600),
                delay=rng.uniform(30, 240),
            )
        )
    return sessions


def _serve() -> tuple[str, object]:
    from django.core.servers.basehttp import (
        ThreadedWSGIServer,
        WSGIRequestHandler,
        get_internal_wsgi_application,
    )

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), Quiet, allow_reuse_address=True)
    server.set_app(get_internal_wsgi_application())
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1 / 500)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import close_old_connections
    from django.utils import timezone

    subprocess.run([sys.executable, str(ROOT / "scripts" / "create_db.py")], check=True)
    call_command("migrate", verbosity=0)
    from apps.accounts.services import secret_hash
    from apps.advertisers.models import Advertiser
    from apps.common.redis import redis_client
    from apps.conversions.models import Conversion
    from apps.offers.models import AccessStatus, Goal, Offer, OfferAccess
    from apps.partners.models import Affiliate, AffiliateStatus
    from apps.quality.behaviour import quality_rescore_offer
    from apps.quality.models import GoalQualitySetting
    from apps.tracking.drain import clicks_drain

    rng = random.Random(args.seed)
    redis_client().flushdb()
    Conversion.objects.all().delete()
    token = "sim-token-123"  # noqa: S105 - a throwaway token on the simulator's own database
    advertiser = Advertiser.objects.create(
        name=f"Sim advertiser {time.time_ns()}",
        postback_token_hash=secret_hash(token),
        postback_token_prefix="sim",  # noqa: S106 - not a secret: the shown prefix
    )
    offer = Offer.objects.create(
        advertiser=advertiser,
        name="Sim lead offer",
        destination_url="https://shop.example.com/lp?cid={click_id}",
        allowed_countries=["GB"],
    )
    goal = Goal.objects.create(offer=offer, code="lead", name="Lead", is_default=True)
    # The only configuration: the lead goal's default timings (15 s, 24 h) at the time scale.
    GoalQualitySetting.objects.create(
        goal=goal, min_seconds=15 * args.scale, max_seconds=86_400 * args.scale
    )
    affiliates = [
        Affiliate.objects.create(name=f"Sim affiliate {i}", status=AffiliateStatus.ACTIVE)
        for i in range(4)
    ]
    for affiliate in affiliates:
        OfferAccess.objects.create(offer=offer, affiliate=affiliate, status=AccessStatus.APPROVED)
    normal_affs, fraud_aff = [a.pk for a in affiliates[:3]], affiliates[3].pk
    sessions = build_traffic(rng, normal_affs, fraud_aff)
    close_old_connections()

    base, _server = _serve()
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            clicks_drain()
            close_old_connections()
            time.sleep(0.5)

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    labels: dict[int, str] = {}
    errors: list[str] = []
    lock = threading.Lock()
    t0 = time.monotonic()
    http = threading.local()

    heap: list[tuple[float, int, str, Session, str]] = [
        (t0 + session.start * args.scale, index, "click", session, "")
        for index, session in enumerate(sessions)
    ]
    heapq.heapify(heap)
    pending = threading.Semaphore(0)
    outstanding = [len(heap)]

    def client() -> requests.Session:
        if getattr(http, "s", None) is None:
            http.s = requests.Session()
        return http.s  # type: ignore[no-any-return]

    def click(index: int, session: Session) -> None:
        response = client().get(
            f"{base}/click",
            params={"offer_id": offer.pk, "aff_id": session.affiliate, "sub1": session.sub1},
            headers={"User-Agent": session.ua, "X-Forwarded-For": session.ip},
            allow_redirects=False,
            timeout=30,
        )
        with lock:
            if session.delay is not None:
                click_id = response.cookies.get("ocpa_cid")
                if response.status_code != 302 or not click_id:
                    reason = response.headers.get("X-Fallback-Reason")
                    errors.append(f"click {response.status_code} {reason} {session.pattern}")
                else:
                    due = time.monotonic() + session.delay * args.scale
                    heapq.heappush(heap, (due, index, "postback", session, click_id))
                    outstanding[0] += 1
            outstanding[0] -= 1
        pending.release()

    def postback(index: int, session: Session, click_id: str) -> None:
        params = {"click_id": click_id, "token": token, "order_id": f"L{index}", "ip": session.ip}
        if session.email:
            params["email"] = session.email
        if session.phone:
            params["phone"] = session.phone
        answer = client().get(f"{base}/postback", params=params, timeout=30).json()
        with lock:
            if answer.get("conversion_id"):
                labels[answer["conversion_id"]] = session.pattern
            else:
                errors.append(f"postback {answer} {session.pattern}")
            outstanding[0] -= 1
        pending.release()

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        while True:
            with lock:
                if outstanding[0] == 0:
                    break
                due, index, kind, session, click_id = heap[0] if heap else (None,) * 5
            if due is None or due > time.monotonic():
                pending.acquire(timeout=0.002 if due is None else max(0.0, due - time.monotonic()))
                continue
            with lock:
                heapq.heappop(heap)
            if kind == "click":
                pool.submit(click, index, session)
            else:
                pool.submit(postback, index, session, click_id)
    elapsed = time.monotonic() - t0
    stop.set()
    drainer.join()
    clicks_drain()
    outcome = quality_rescore_offer(offer_id=offer.pk, now=timezone.now(), window_hours=24)

    threshold = offer.quality_threshold
    flagged: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    reasons: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for pk, score, why in Conversion.objects.filter(pk__in=labels).values_list(
        "pk", "quality_score", "quality_reasons"
    ):
        pattern = labels[pk]
        total[pattern] += 1
        flagged[pattern] += score < threshold
        for reason in why:
            reasons[pattern][reason] += 1

    fraud_patterns = [p for p in total if p != "normal"]
    true_pos = sum(flagged[p] for p in fraud_patterns)
    fraud_total = sum(total[p] for p in fraud_patterns)
    false_pos = flagged["normal"]
    precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else 0.0
    print(
        f"sessions {len(sessions)}, conversions {sum(total.values())}, errors {len(errors)}, "
        f"wall {elapsed:.0f} s at scale 1/{round(1 / args.scale)}, re-score {outcome}"
    )
    print()
    print(
        "| traffic | conversions | flagged | recall (fraud) / false-positive rate (normal) | "
        "top reasons |"
    )
    print("| --- | ---: | ---: | ---: | --- |")
    for pattern in ["normal", *sorted(fraud_patterns)]:
        top = sorted(reasons[pattern].items(), key=lambda kv: -kv[1])[:3]
        rate = flagged[pattern] / total[pattern] if total[pattern] else 0.0
        print(
            f"| {pattern} | {total[pattern]} | {flagged[pattern]} | {rate:.1%} | "
            + ", ".join(f"{code} ({n})" for code, n in top)
            + " |"
        )
    recall = true_pos / fraud_total if fraud_total else 0.0
    print(f"| **all fraud** | {fraud_total} | {true_pos} | {recall:.1%} | |")
    print()
    print(
        f"overall: recall {recall:.1%}, precision {precision:.1%}, "
        f"false-positive rate on normal {false_pos / max(1, total['normal']):.1%}"
    )
    for error in errors[:5]:
        print("error:", error)
    ok = recall >= 0.90 and false_pos / max(1, total["normal"]) <= 0.02
    print("target met" if ok else "TARGET MISSED")


if __name__ == "__main__":
    main()
