"""Real Celery worker processes for flow and fault tests, on the test database and Redis db."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def celery_worker_start(
    *, queues: str, log_path: Path, beat_schedule: Path | None = None, **env: str
) -> subprocess.Popen[bytes]:
    """Start `celery worker` (solo pool) against this test run's database; extra settings via env.

    With beat_schedule, beat runs inside the worker (it drains the click buffer every second).
    """
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool=solo",
        "-Q",
        queues,
        "--loglevel=INFO",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat_schedule is not None:
        command += ["-B", "--schedule", str(beat_schedule)]
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=process_env_for_tests(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def process_env_for_tests(**env: str) -> dict[str, str]:
    """The environment of a process (worker, web server) that works on this test run's database
    and Redis db."""
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        **env,
    }


def process_stop(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM, and SIGKILL when it has not stopped within `timeout` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def celery_worker_stop(worker: subprocess.Popen[bytes]) -> None:
    process_stop(worker, timeout=15)
