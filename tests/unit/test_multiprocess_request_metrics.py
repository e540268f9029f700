"""With several workers, the request numbers a worker publishes read back as prometheus_client's own would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Run in a process of its own: prometheus_client picks its file-backed values when imported.
SCRIPT = """
import sys
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from service.telemetry.metrics import Metrics
from tests.unit.test_request_envelope_costs import OBSERVATIONS, prometheus_reference

metrics = Metrics()
assert metrics.multiprocess
reference = prometheus_reference(None)
for observation in OBSERVATIONS:
    if sys.argv[1] == "published":
        metrics.observe_request(*observation)
        # Publishing again writes totals, never adds them up twice.
        metrics.publish()
    else:
        reference(*observation)
registry = CollectorRegistry()
MultiProcessCollector(registry)
print(generate_latest(registry).decode())
"""


def http_samples(kind: str, directory: Path) -> set[str]:
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, kind], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return {line for line in result.stdout.splitlines() if line.startswith("stats_http_")}


def test_published_request_numbers_read_back_as_prometheus_clients_own(tmp_path: Path) -> None:
    published = http_samples("published", tmp_path / "published")
    assert 'stats_http_requests_total{method="POST",route="/courses/{courseId}",status="503"} 1.0' in published
    assert published == http_samples("reference", tmp_path / "reference")
