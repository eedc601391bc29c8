"""The production web server for flow tests: granian running config.wsgi:application on the test
database and Redis db, over real HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.workers import process_env_for_tests, process_stop

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/postback", timeout=2).status_code == 400
    except requests.ConnectionError:
        return False


def _workers_started(log: Path, workers: int) -> bool:
    text = log.read_text()
    return all(f"Started worker-{number}" in text for number in range(1, workers + 1))


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    """`granian` with two single-threaded workers, as scripts/serve.sh runs it."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "granian.log").open("wb")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("granian")),
            "--interface",
            "wsgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
            "--blocking-threads",
            "1",
            "--no-ws",
            "config.wsgi:application",
        ],
        cwd=ROOT,
        env=process_env_for_tests(TEST_TRACKING_BASE_URL=url),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        # Every worker started, not only the first to answer: granian 2.8 told to stop while a
        # worker is still importing Django waits for it forever (seen on a slow run).
        while not _answers(url) or not _workers_started(tmp_path / "granian.log", 2):
            assert process.poll() is None, (tmp_path / "granian.log").read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield url
    finally:
        process_stop(process, timeout=30)
        log.close()
