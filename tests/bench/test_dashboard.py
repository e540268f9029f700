"""A short local render of the dashboard (``bench.dashboard.render``, which ``scripts/dashboard`` runs):
15 s of load against the service in local mode with Redis flushed, then Redis and DynamoDB frozen a while.
It checks the PNG is drawn and that the series behind the service's panels are there and plausible."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest

from bench.dashboard import render
from bench.localrun import Plan
from bench.panels import PANELS, SERVICE, interpolate
from bench.promql import metric_names

PLAN = Plan(15.0)

pytestmark = pytest.mark.slow

Points = list[list[float]]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dashboard")
    assert render(out, PLAN, out / "series.json") == 0
    return out


@pytest.fixture(scope="module")
def summary(rendered: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((rendered / "series.json").read_text())
    return loaded


def lines(summary: dict[str, Any], title: str) -> dict[str, Points]:
    found: dict[str, Points] = summary["panels"][title]
    return found


def values(points: Points, since: float = 0.0, until: float = float("inf")) -> list[float]:
    return [value for time, value in points if since <= time <= until]


def test_the_png_holds_every_panel_in_one_grid(rendered: Path) -> None:
    image = matplotlib.image.imread(rendered / "local-dashboard.png")

    # Five rows of three panels at 80 dpi (bench.dashboard.draw).
    assert image.shape[:2] == (1640, 1520)
    # Drawn, not blank: many distinct colours.
    assert len({tuple(pixel) for pixel in image[::7, ::7].reshape(-1, image.shape[2])}) > 50


def test_every_second_was_scraped_and_every_panel_metric_was_in_the_scrapes(summary: dict[str, Any]) -> None:
    assert summary["scrapes"] >= PLAN.seconds
    scraped = set(summary["metric_names"])
    for panel in PANELS:
        if panel.source == SERVICE:
            used = {name for query in panel.queries for name in metric_names(interpolate(query.expr, "5s"))}
            assert used <= scraped, (panel.title, sorted(used - scraped))
    # The AWS panels are drawn as not available, never evaluated.
    assert set(summary["panels"]) == {panel.title for panel in PANELS if panel.source == SERVICE}


def test_the_request_rate_adds_up_to_the_load(summary: dict[str, Any]) -> None:
    rate = lines(summary, "Request rate")
    assert {"GET /courses/{courseId}", "POST /courses/{courseId}", "GET /metrics"} <= set(rate)
    # The open loop sends PLAN.rate a second: the rate of every route but /metrics, averaged while
    # nothing is frozen (past the first window), is close to it.
    totals: dict[float, float] = defaultdict(float)
    for name, points in rate.items():
        for time, value in points:
            if name != "GET /metrics" and 2 <= time <= PLAN.redis_pause_at:
                totals[time] += value
    assert totals
    assert 0.6 * PLAN.rate < sum(totals.values()) / len(totals) < 1.3 * PLAN.rate
    assert values(rate["GET /metrics"]) == pytest.approx([1.0] * len(rate["GET /metrics"]), rel=0.2)


def test_latency_quantiles_are_ordered_and_within_the_buckets(summary: dict[str, Any]) -> None:
    latency = lines(summary, "Latency p50 and p99 by route")
    assert "p50 /courses/{courseId}" in latency
    for name, points in latency.items():
        if name.startswith("p50 "):
            p99 = dict((time, value) for time, value in latency["p99 " + name[4:]])
            for time, p50 in points:
                assert 0 < p50 <= p99[time] <= 5.0, (name, time)


def test_the_hit_ratio_is_a_share_and_drops_when_redis_is_flushed(summary: dict[str, Any]) -> None:
    (ratio,) = lines(summary, "Cache hit ratio").values()
    assert all(0 <= value <= 1 for value in values(ratio))
    before = max(values(ratio, until=PLAN.flush_at))
    after = min(values(ratio, PLAN.flush_at + 1, PLAN.redis_pause_at))
    assert before > 0.3
    assert after < before


def test_aggregates_are_rebuilt_after_the_flush(summary: dict[str, Any]) -> None:
    (rebuilds,) = lines(summary, "Rebuilds").values()
    assert max(values(rebuilds, PLAN.flush_at + 1, PLAN.redis_pause_at)) > 0


def test_a_frozen_redis_shows_as_fallback_reads_errors_and_an_open_circuit(summary: dict[str, Any]) -> None:
    pause = (PLAN.redis_pause_at, PLAN.redis_pause_at + PLAN.redis_pause_seconds + 6)
    (fallback,) = lines(summary, "Fallback reads").values()
    assert max(values(fallback, *pause)) > 0
    assert max(values(fallback, until=PLAN.redis_pause_at)) == 0

    errors = lines(summary, "Dependency errors")
    redis_errors = [name for name in errors if name.startswith("redis ")]
    assert redis_errors
    assert max(value for name in redis_errors for value in values(errors[name], *pause)) > 0

    circuit = lines(summary, "Redis circuit state")
    assert max(values(circuit["circuit state"], *pause)) >= 1
    assert set(values(circuit["circuit state"], until=PLAN.redis_pause_at)) == {0}
    # Writes whose Redis update failed wait for repair, and are repaired once Redis is back.
    assert max(values(circuit["stale aggregates"], *pause)) > 0
    assert values(circuit["stale aggregates"])[-1] == 0


def test_the_5xx_panel_shows_the_server_errors_the_load_met(summary: dict[str, Any]) -> None:
    server_errors = lines(summary, "5xx responses")
    assert all(name.startswith("5") for name in server_errors)
    assert bool(server_errors) == any(status.startswith("5") for status in summary["statuses"])
