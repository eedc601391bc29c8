"""Helpers shared by the HTTP benchmarks (click_bench.py, postback_bench.py): the bench
environment, running Django snippets against the bench database, starting the production server
(`scripts/serve.sh`) and running wrk."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
# The venv the server runs from too (scripts/serve.sh, the Makefile: VENV, default .venv).
PY = str(ROOT / os.environ.get("VENV", ".venv") / "bin" / "python")
UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36"
)


def bench_env(*, database: str, redis_db: int, port: int, web_workers: int) -> dict[str, str]:
    """Environment for the bench processes: a database and a Redis db of their own."""
    base = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/opencpa"))
    redis_base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    return {
        **os.environ,
        "DATABASE_URL": base._replace(path=f"/{database}").geturl(),
        "REDIS_URL": f"{redis_base}/{redis_db}",
        "SECRET_KEY": "bench-only-secret",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "BENCH_ENDPOINTS": "1",
        "WEB_WORKERS": str(web_workers),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "TRACKING_BASE_URL": f"http://127.0.0.1:{port}",
    }


def run(cmd: list[str], env: dict[str, str], *, cwd: Path = ROOT) -> str:
    return subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def django(env: dict[str, str], code: str, *, root: Path = ROOT) -> str:
    """Run a snippet with Django set up against the bench database, on the code in `root` (this
    checkout unless told); returns its stdout."""
    prelude = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', "
        "'config.settings.base'); django.setup()\n"
    )
    return run([PY, "-c", prelude + code], env, cwd=root)


def server_start(env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    """The production web server, as `make serve` runs it (stop it with `process_stop`); its
    output goes to `log` when given, else nowhere."""
    output = log.open("wb") if log else subprocess.DEVNULL
    return subprocess.Popen(
        ["scripts/serve.sh"],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
        start_new_session=True,
    )


def process_stop(process: subprocess.Popen[bytes]) -> None:
    import signal

    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def wait_http(port: int, timeout: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/offer-unavailable/", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def wrk_run(
    url: str,
    seconds: int,
    connections: int,
    *,
    script: Path,
    script_args: list[str] | None = None,
    threads: int = 2,
    timeout: int | None = None,
) -> str:
    """wrk's output (with --latency) for one run."""
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        *([f"--timeout={timeout}s"] if timeout else []),
        "-H",
        f"User-Agent: {UA}",
        "-s",
        str(script),
        url,
    ]
    if script_args:
        cmd += ["--", *script_args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def wrk_latency(out: str, label: str) -> float:
    """A latency percentile ("50%", "99%") from wrk's --latency output, in ms."""
    match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk_rps(out: str) -> float:
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def wrk_counter(out: str, name: str) -> int:
    """A `NAME <int>` line a wrk Lua script wrote in its done() hook."""
    return int(re.search(rf"^{name} (\d+)$", out, re.M).group(1))  # type: ignore[union-attr]


def wrk_socket_errors(out: str) -> dict[str, int]:
    """wrk's socket errors (connect, read, write, timeout): zeros when it reports none."""
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    names = ("connect", "read", "write", "timeout")
    return dict(zip(names, (int(v) for v in match.groups()) if match else (0,) * 4, strict=True))
