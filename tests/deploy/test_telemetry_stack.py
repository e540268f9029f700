"""deploy/stack.yaml's telemetry: the collector sidecar, its permissions, the Tracing parameter, the dashboard.

The template is rendered as CloudFormation would for given parameters (conftest's ``render``), and
``Fn::Sub`` substituted with stand-in names for the stack's resources.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from bench.panels import PANELS
from service.telemetry.metrics import Metrics

Resource = dict[str, Any]
Render = Callable[..., dict[str, Any]]

# Stand-ins for what CloudFormation substitutes.
REFS = {
    "AWS::Region": "eu-west-1",
    "AWS::StackName": "stats",
    "Table": "stats-table",
    "LogGroup": "stats-logs",
    "MetricsLogGroup": "stats-metrics",
    "Redis": "stats-redis",
    "RedisCluster": "stats-redis-cluster",
    "RedisServerless": "stats-cache",
}
# The Grafana dashboard's panels (bench/panels.py): the CloudWatch one draws the same, by title.
TITLES = [panel.title for panel in PANELS]
# A search expression's schema, its other terms, and the metric name it asks for.
SEARCH = re.compile(
    r"SEARCH\('\{(?P<namespace>[^,}]+)(?P<dimensions>(?:,[^,}]+)*)\}(?P<terms>[^']*?) MetricName=\"(?P<metric>[^\"]+)\""
)


def _sub(argument: Any) -> str:
    text, variables = (argument, {}) if isinstance(argument, str) else argument
    values = REFS | {name: _substitute(value) for name, value in variables.items()}
    # Names these tests do not read (resource attributes, other pseudo parameters) stay as written.
    return re.sub(r"\$\{([^}]+)\}", lambda match: str(values.get(match.group(1), match.group())), text)


def _substitute(node: Any) -> Any:
    """``node`` with Fn::Sub and Ref of the stand-ins substituted."""
    if isinstance(node, list):
        return [_substitute(value) for value in node]
    if not isinstance(node, dict):
        return node
    if list(node) == ["Fn::Sub"]:
        return _sub(node["Fn::Sub"])
    if list(node) == ["Ref"] and node["Ref"] in REFS:
        return REFS[node["Ref"]]
    return {key: _substitute(value) for key, value in node.items()}


@pytest.fixture(scope="module")
def stack(render: Render) -> Render:
    """The resources CloudFormation would create for these parameters (with an image, so the task exists)."""

    def rendered(**parameters: str) -> dict[str, Any]:
        resources: dict[str, Any] = _substitute(render(ImageTag="v1", **parameters)["Resources"])
        return resources

    return rendered


def _containers(resources: dict[str, Any]) -> dict[str, Resource]:
    definitions = resources["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    return {definition["Name"]: definition for definition in definitions}


def _collector_config(resources: dict[str, Any]) -> dict[str, Any]:
    environment = {item["Name"]: item["Value"] for item in _containers(resources)["collector"]["Environment"]}
    config: dict[str, Any] = yaml.safe_load(environment["AOT_CONFIG_CONTENT"])
    return config


@pytest.mark.parametrize("tracing", ["enabled", "disabled"])
def test_the_collector_scrapes_the_port_the_app_listens_on(
    stack: Render, dockerfile_env: dict[str, str], tracing: str
) -> None:
    resources = stack(Tracing=tracing)
    config = _collector_config(resources)
    (scrape,) = config["receivers"]["prometheus"]["config"]["scrape_configs"]
    (targets,) = scrape["static_configs"]
    (mapping,) = _containers(resources)["app"]["PortMappings"]
    # The task's containers share one network namespace: the app is on localhost.
    assert targets["targets"] == [f"localhost:{mapping['ContainerPort']}"]
    assert str(mapping["ContainerPort"]) == dockerfile_env["STATS_PORT"]
    assert scrape["metrics_path"] == "/metrics"
    metrics = config["service"]["pipelines"]["metrics"]
    assert (metrics["receivers"], metrics["exporters"]) == (["prometheus"], ["awsemf"])
    assert set(metrics["processors"]) <= set(config["processors"])


def test_tracing_is_off_unless_asked(template: dict[str, Any]) -> None:
    assert template["Parameters"]["Tracing"]["Default"] == "disabled"


@pytest.mark.parametrize("tracing", ["enabled", "disabled"])
def test_traces_reach_x_ray_only_with_tracing(stack: Render, tracing: str) -> None:
    enabled = tracing == "enabled"
    resources = stack(Tracing=tracing)
    config = _collector_config(resources)
    pipelines = config["service"]["pipelines"]
    app_env = {item["Name"]: item["Value"] for item in _containers(resources)["app"]["Environment"]}
    assert ("traces" in pipelines) is enabled
    assert ("otlp" in config["receivers"]) is enabled
    assert ("awsxray" in config["exporters"]) is enabled
    assert ("CollectorTracesPolicy" in resources) is enabled
    assert ("OTEL_EXPORTER_OTLP_ENDPOINT" in app_env) is enabled
    assert ("OTEL_TRACES_SAMPLER" in app_env) is enabled
    if enabled:
        # A share of the requests, not every one: a trace costs a cached read about three times its CPU.
        assert app_env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        assert app_env["OTEL_TRACES_SAMPLER_ARG"] == {"Ref": "TraceSampleRatio"}
        assert (pipelines["traces"]["receivers"], pipelines["traces"]["exporters"]) == (["otlp"], ["awsxray"])
        protocols = config["receivers"]["otlp"]["protocols"]
        # Reachable from the task only, and where the app sends its spans.
        assert protocols == {"grpc": {"endpoint": "localhost:4317"}, "http": {"endpoint": "localhost:4318"}}
        assert app_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4318"


def test_a_failing_collector_cannot_stop_or_hold_back_the_app(stack: Render) -> None:
    containers = _containers(stack())
    assert set(containers) == {"app", "collector"}
    assert containers["app"]["Essential"] is True
    assert containers["collector"]["Essential"] is False
    # Waiting for the collector would make its failure to start the app's.
    assert "DependsOn" not in containers["app"]
    assert containers["collector"]["ReadonlyRootFilesystem"] is True
    assert containers["collector"]["LogConfiguration"]["Options"]["awslogs-group"] == REFS["LogGroup"]


def _collector_statements(resources: dict[str, Any]) -> list[Resource]:
    """Every statement of the policies attached to the task's role beside its own (the collector's)."""
    return [
        statement
        for body in resources.values()
        if body["Type"] == "AWS::IAM::RolePolicy" and body["Properties"]["RoleName"] == {"Ref": "TaskRole"}
        for statement in body["Properties"]["PolicyDocument"]["Statement"]
    ]


@pytest.mark.parametrize("tracing", ["enabled", "disabled"])
def test_the_collector_may_write_its_log_group_and_with_tracing_x_ray_only(stack: Render, tracing: str) -> None:
    resources = stack(Tracing=tracing)
    granted = {
        (json.dumps(statement["Resource"], sort_keys=True), action)
        for statement in _collector_statements(resources)
        for action in statement["Action"]
    }
    log_group = json.dumps({"Fn::GetAtt": ["MetricsLogGroup", "Arn"]})
    expected = {(log_group, "logs:CreateLogStream"), (log_group, "logs:PutLogEvents")}
    if tracing == "enabled":
        expected |= {('"*"', "xray:PutTraceSegments"), ('"*"', "xray:PutTelemetryRecords")}
    assert granted == expected
    assert all(
        statement["Effect"] == "Allow" and "Condition" not in statement
        for statement in _collector_statements(resources)
    )
    # That log group is where the exporter writes.
    assert _collector_config(resources)["exporters"]["awsemf"]["log_group_name"] == REFS["MetricsLogGroup"]
    assert resources["MetricsLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def _dashboard(resources: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(resources["Dashboard"]["Properties"]["DashboardBody"])
    return body


def _dashboard_metrics(dashboard: dict[str, Any]) -> set[tuple[str, str, tuple[str, ...]]]:
    """(namespace, metric, dimension names) of every metric a panel draws, directly or by a search."""
    found = set()
    for widget in dashboard["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if "expression" in row[0]:
                search = SEARCH.search(row[0]["expression"])
                if search:
                    dimensions = tuple(filter(None, search["dimensions"].split(",")))
                    found.add((search["namespace"], search["metric"], dimensions))
                continue
            plain = [item for item in row if isinstance(item, str)]
            found.add((plain[0], plain[1], tuple(plain[2::2])))
    return found


def _exposed_metric_names() -> set[str]:
    """The series names /metrics exposes, as the collector's Prometheus receiver names them."""
    return {
        f"{family.name}_total" if family.type == "counter" else family.name for family in Metrics().registry.collect()
    }


def test_the_dashboard_has_each_panel_once(stack: Render) -> None:
    titles = [widget["properties"]["title"] for widget in _dashboard(stack())["widgets"]]
    assert sorted(titles) == sorted(TITLES)


def test_every_service_metric_on_the_dashboard_is_exposed_and_exported_with_its_dimensions(stack: Render) -> None:
    resources = stack()
    awsemf = _collector_config(resources)["exporters"]["awsemf"]
    namespace = awsemf["namespace"]
    assert namespace == f"LearningStats/{REFS['AWS::StackName']}"
    service = {
        (metric, dimensions)
        for space, metric, dimensions in _dashboard_metrics(_dashboard(resources))
        if space == namespace
    }
    assert {metric for metric, _ in service} <= _exposed_metric_names()
    for metric, dimensions in service:
        assert any(
            list(dimensions) in declaration["dimensions"]
            and any(re.fullmatch(selector, metric) for selector in declaration["metric_name_selectors"])
            for declaration in awsemf["metric_declarations"]
        ), (metric, dimensions)
    # Every panel of the service's own metrics is drawn from the collector's namespace.
    assert {metric for metric, _ in service} >= {
        "stats_http_requests_total",
        "stats_cache_hits_total",
        "stats_cache_misses_total",
        "stats_cache_rebuilds_total",
        "stats_cache_fallback_reads_total",
        "stats_dependency_errors_total",
        "stats_redis_circuit_state",
    }


# How each cache mode's resource reports to CloudWatch: its dimension, and its CPU, memory and eviction metrics.
CACHE_METRICS = {
    "replication-group": ("Redis", "CacheClusterId", {"EngineCPUUtilization", "DatabaseMemoryUsagePercentage"}),
    "cluster-mode": ("RedisCluster", "CacheClusterId", {"EngineCPUUtilization", "DatabaseMemoryUsagePercentage"}),
    "serverless": ("RedisServerless", "clusterId", {"ElastiCacheProcessingUnits", "BytesUsedForCache"}),
}


@pytest.mark.parametrize("mode", sorted(CACHE_METRICS))
def test_the_dashboards_aws_panels_watch_the_stacks_table_and_cache(stack: Render, mode: str) -> None:
    resources = stack(CacheMode=mode)
    dashboard = _dashboard(resources)
    aws = {entry for entry in _dashboard_metrics(dashboard) if entry[0].startswith("AWS/")}
    assert {(metric, dimensions) for space, metric, dimensions in aws if space == "AWS/DynamoDB"} == {
        ("ConsumedReadCapacityUnits", ("TableName",)),
        ("ConsumedWriteCapacityUnits", ("TableName",)),
        ("ReadThrottleEvents", ("TableName",)),
        ("WriteThrottleEvents", ("TableName",)),
    }
    text = json.dumps(dashboard)
    assert text.count(f'"TableName", "{REFS["Table"]}"') == 4
    cache, dimension, metrics = CACHE_METRICS[mode]
    assert cache in resources
    assert {(metric, dimensions) for space, metric, dimensions in aws if space == "AWS/ElastiCache"} == {
        (metric, (dimension,)) for metric in {*metrics, "Evictions"}
    }
    # A replication group's or cluster's nodes are its member clusters, named after it.
    assert text.count(f"{{AWS/ElastiCache,{dimension}}} {REFS[cache]} MetricName=") == 3


def test_latency_percentiles_come_from_the_apps_access_log(stack: Render) -> None:
    resources = stack()
    (panel,) = [w for w in _dashboard(resources)["widgets"] if w["properties"]["title"] == TITLES[1]]
    query = panel["properties"]["query"]
    app_logs = _containers(resources)["app"]["LogConfiguration"]["Options"]["awslogs-group"]
    assert query.startswith(f"SOURCE '{app_logs}' |")
    # The access log's fields (tests/integration/test_observability.py checks the line).
    for field in ('message = "request"', "pct(duration_ms, 50)", "pct(duration_ms, 99)", "by route"):
        assert field in query


def test_the_5xx_panel_counts_only_server_errors(stack: Render) -> None:
    # Exported by status for 5xx answers only, so the panel's search over status sums exactly those.
    declarations = _collector_config(stack())["exporters"]["awsemf"]["metric_declarations"]
    (by_status,) = [declaration for declaration in declarations if declaration["dimensions"] == [["status"]]]
    (matcher,) = by_status["label_matchers"]
    assert matcher["label_names"] == ["status"]
    counted = {
        status
        for status in ("200", "201", "204", "400", "404", "429", "500", "503")
        if re.match(matcher["regex"], status)
    }
    assert counted == {"500", "503"}
