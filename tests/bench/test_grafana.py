"""The Grafana dashboard: generated from the panel definitions, in PromQL that parses, over the metrics the
service exposes (as its own registry writes them) and the CloudWatch exporter's names for AWS's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import promql_parser
import pytest
from prometheus_client import generate_latest

from bench import grafana
from bench.dashboard import legend
from bench.panels import CLOUDWATCH, PANELS, SERVICE, Panel, interpolate
from bench.promql import Scrape, labels, metric_names
from service.telemetry.metrics import Metrics

COMMITTED = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "learning-stats.json"
TITLES = (
    "Request rate",
    "Latency p50 and p99 by route",
    "5xx responses",
    "Cache hit ratio",
    "Rebuilds",
    "Fallback reads",
    "Dependency errors",
    "Redis circuit state",
    "DynamoDB consumed capacity",
    "DynamoDB throttles",
    "ElastiCache CPU",
    "ElastiCache memory",
    "ElastiCache evictions",
)


def names(panel: Panel) -> set[str]:
    return {name for query in panel.queries for name in metric_names(interpolate(query.expr, "1m"))}


def exposed() -> set[str]:
    """Every sample name the service's registry writes once each labelled metric has a child."""
    metrics = Metrics()
    metrics.observe_request("GET", "/points", 200, 0.01)
    metrics.dependency_errors.labels("redis", "TimeoutError").inc()
    metrics.dependency_retries.labels("dynamodb").inc()
    metrics.redis_redirections.labels("moved").inc()
    return set(Scrape.parse(0.0, generate_latest(metrics.registry).decode()).samples)


def test_the_committed_dashboard_is_what_the_panel_definitions_generate() -> None:
    assert COMMITTED.read_text() == grafana.render(), "regenerate: python -m bench.dashboard grafana > " + str(
        COMMITTED
    )


def test_the_panels_are_the_operators_list_in_order() -> None:
    assert tuple(panel.title for panel in PANELS) == TITLES
    panels = [panel for panel in json.loads(COMMITTED.read_text())["panels"] if panel["type"] == "timeseries"]
    assert tuple(panel["title"] for panel in panels) == TITLES


@pytest.mark.parametrize("panel", PANELS, ids=lambda panel: panel.title)
def test_every_query_parses_as_promql_once_grafana_replaced_its_variables(panel: Panel) -> None:
    for query in panel.queries:
        assert "$" not in interpolate(query.expr, "1m")
        promql_parser.parse(interpolate(query.expr, "1m"))


def test_the_service_panels_read_only_metrics_the_service_exposes() -> None:
    written = exposed()
    used = {name for panel in PANELS if panel.source == SERVICE for name in names(panel)}

    assert used, "the service panels name no metric"
    assert used <= written, f"not exposed: {sorted(used - written)}"
    # What the dashboard leaves out, so that a new metric is left out only on purpose.
    unused = {name for name in written if not name.endswith(("_created", "_count", "_sum"))} - used
    assert unused == {
        "stats_cache_rebuild_duration_seconds_bucket",
        "stats_cache_slow_path_reads_total",
        "stats_redis_redirections_total",
    }


@pytest.mark.parametrize("panel", [p for p in PANELS if p.source == CLOUDWATCH], ids=lambda panel: panel.title)
def test_the_aws_panels_use_the_cloudwatch_exporters_names_and_say_so(panel: Panel) -> None:
    namespace = "aws_dynamodb_" if panel.title.startswith("DynamoDB") else "aws_elasticache_"

    assert names(panel)
    assert all(name.startswith(namespace) for name in names(panel))
    assert all(name.endswith(("_sum", "_average")) for name in names(panel))
    assert "prometheus/cloudwatch_exporter" in panel.description


def test_the_layout_gives_each_panel_its_own_place_and_the_datasource_variable() -> None:
    dashboard: dict[str, Any] = json.loads(COMMITTED.read_text())
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        place = panel["gridPos"]
        area = {
            (x, y)
            for x in range(place["x"], place["x"] + place["w"])
            for y in range(place["y"], place["y"] + place["h"])
        }
        assert not area & cells, panel["title"]
        assert place["x"] + place["w"] <= 24
        cells |= area
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert dashboard["schemaVersion"] == 39
    for panel in dashboard["panels"]:
        if panel["type"] == "timeseries":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"])


def test_grafana_variables_are_replaced_as_their_all_value_and_the_rate_window() -> None:
    expr = 'sum(rate(m{job=~"$job",instance=~"$instance",table_name=~"$table"}[$__rate_interval]))'

    assert interpolate(expr, "5s") == 'sum(rate(m{job=~".*",instance=~".*",table_name=~".*"}[5s]))'


def test_legends_name_the_series_labels() -> None:
    assert legend("{{method}} {{route}}", labels(method="GET", route="/points")) == "GET /points"
    assert legend("p99 {{ route }}", labels(route="/a")) == "p99 /a"
    assert legend("hit ratio", ()) == "hit ratio"
