"""The container's gunicorn with two workers: one scrape of ``/metrics`` is the whole task's view."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from localmode.servers import free_port
from service.settings import Settings
from tests.integration.conftest import ROOT, wait_for_http
from tests.integration.support import TABLE

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Gunicorn:
    def __init__(self, process: subprocess.Popen[bytes], base: str) -> None:
        self.process = process
        self.base = base

    def workers(self) -> set[int]:
        pid = self.process.pid
        return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}

    def get(self, path: str) -> bytes:
        # A new connection each time (urllib closes it), so any worker may accept it.
        with urllib.request.urlopen(f"{self.base}{path}", timeout=10) as response:
            body: bytes = response.read()
            return body

    def scrape(self) -> Samples:
        families = text_string_to_metric_families(self.get("/metrics").decode())
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in families
            for sample in family.samples
        }


@pytest.fixture
def gunicorn(settings: Settings, tmp_path: Path) -> Iterator[Gunicorn]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("STATS_")}
    env |= {
        "STATS_ENV": "local",
        "STATS_PORT": str(port),
        "STATS_WORKERS": "2",
        "STATS_REDIS_URL": settings.redis_url or "",
        "STATS_DYNAMODB_ENDPOINT": settings.dynamodb_endpoint or "",
        "STATS_DYNAMODB_TABLE": TABLE,
        "STATS_ACCESS_LOG": "false",
        "STATS_CHANGE_CAPTURE": "false",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    log_path = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "--config", "python:service.gunicorn_conf", "service.main:app_factory"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base}/health", process, log_path)
            yield Gunicorn(process, base)
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, log_path.read_text()


def until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def circuit_pids(samples: Samples) -> set[int]:
    return {int(dict(labels)["pid"]) for name, labels in samples if name == "stats_redis_circuit_state"}


def version_counts(samples: Samples) -> tuple[float, float]:
    """Requests answered on /version (which no start-up probe asks), by the counter and by the latency histogram."""
    route = {("method", "GET"), ("route", "/version")}
    return (
        samples.get(("stats_http_requests_total", frozenset({*route, ("status", "200")})), 0.0),
        samples.get(("stats_http_request_duration_seconds_count", frozenset(route)), 0.0),
    )


def served_by(gunicorn: Gunicorn, worker: int, count: int) -> None:
    """``count`` requests that only ``worker`` can accept: every other worker is stopped meanwhile."""
    others = gunicorn.workers() - {worker}
    for other in others:
        os.kill(other, signal.SIGSTOP)
    try:
        for _ in range(count):
            gunicorn.get("/version")
    finally:
        for other in others:
            os.kill(other, signal.SIGCONT)


def test_one_scrape_counts_every_workers_requests_and_a_dead_workers_counts_stay(gunicorn: Gunicorn) -> None:
    # Each worker publishes its gauges within a second of starting: both are up and sharing.
    until(lambda: len(gunicorn.workers()) == 2, "two workers")
    first, second = sorted(gunicorn.workers())
    until(lambda: circuit_pids(gunicorn.scrape()) == {first, second}, "both workers in the shared view")
    expected = (12.0, 12.0)

    served_by(gunicorn, first, 7)
    served_by(gunicorn, second, 5)
    # A scrape, whichever worker answers it, counts both workers' requests (the other's within a second).
    until(lambda: version_counts(gunicorn.scrape()) == expected, f"{expected} requests counted")
    assert version_counts(gunicorn.scrape()) == expected

    os.kill(first, signal.SIGKILL)
    until(lambda: first not in circuit_pids(gunicorn.scrape()), "the dead worker's gauge gone")
    samples = gunicorn.scrape()
    assert second in circuit_pids(samples)
    assert version_counts(samples) == expected, "the dead worker's counts stay in the task's totals"
