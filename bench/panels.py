"""The operator's dashboard as data: each panel's title, PromQL queries with their legends, and unit.

Two renderings read these definitions: ``bench.grafana`` writes the Grafana dashboard
(``deploy/grafana/learning-stats.json``) and ``bench.dashboard render`` evaluates the same
queries over scrapes of a local run and draws them to PNG. The stack's CloudWatch dashboard
uses the same titles.

The queries use Grafana's variables: ``$job`` and ``$instance`` pick the service's scrape
targets, ``$table`` and ``$cache_cluster`` the AWS resources, and ``$__rate_interval`` the
window of ``rate``. :func:`interpolate` replaces them as Grafana does, for a local evaluation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The service's own metrics, as /metrics names them.
SERVICE = "service"
# AWS's metrics as the Prometheus CloudWatch exporter (prometheus/cloudwatch_exporter) names them:
# aws_<namespace>_<metric in snake case>_<statistic>, dimensions as snake-case labels.
CLOUDWATCH = "cloudwatch"

# The exporter's default CloudWatch period: its _sum samples hold one period's total.
CLOUDWATCH_PERIOD_SECONDS = 60

_EXPORTER_NOTE = (
    "AWS metric, read through the Prometheus CloudWatch exporter (prometheus/cloudwatch_exporter) "
    "with its naming: aws_<namespace>_<metric in snake case>_<statistic>, dimensions as snake-case "
    f"labels, period_seconds {CLOUDWATCH_PERIOD_SECONDS}. YACE names the same metrics alike but labels "
    "dimensions dimension_<Name>. Not available in a local run."
)

_TARGETS = 'job=~"$job",instance=~"$instance"'
_VARIABLES = re.compile(r"\$(__rate_interval|job|instance|table|cache_cluster)\b")


@dataclass(frozen=True)
class Query:
    expr: str
    # Grafana's legendFormat: {{label}} stands for the series' value of that label.
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    # A Grafana unit id: reqps, s, percentunit, percent, ops, short.
    unit: str
    queries: tuple[Query, ...]
    source: str = SERVICE


def _selector(metric: str, matchers: str = "") -> str:
    return f"{metric}{{{','.join(filter(None, (_TARGETS, matchers)))}}}"


def _rate(metric: str, matchers: str = "") -> str:
    return f"rate({_selector(metric, matchers)}[$__rate_interval])"


def _hit_ratio() -> str:
    hits, misses = _rate("stats_cache_hits_total"), _rate("stats_cache_misses_total")
    return f"sum({hits}) / (sum({hits}) + sum({misses}))"


def _latency(quantile: float) -> Query:
    expr = f"histogram_quantile({quantile}, sum by (route, le) ({_rate('stats_http_request_duration_seconds_bucket')}))"
    return Query(expr, f"p{round(quantile * 100)} {{{{route}}}}")


def _cloudwatch(title: str, what: str, unit: str, *queries: Query) -> Panel:
    return Panel(title, f"{what} {_EXPORTER_NOTE}", unit, queries, CLOUDWATCH)


def _table(metric: str) -> str:
    return f'aws_dynamodb_{metric}{{table_name=~"$table"}}'


def _per_node(metric: str, what: str = "", aggregation: str = "max") -> Query:
    selector = f'aws_elasticache_{metric}{{cache_cluster_id=~"$cache_cluster"}}'
    return Query(f"{aggregation} by (cache_cluster_id) ({selector})", f"{{{{cache_cluster_id}}}} {what}".strip())


PANELS: tuple[Panel, ...] = (
    Panel(
        "Request rate",
        "Requests answered per second, by method and route template.",
        "reqps",
        (Query(f"sum by (method, route) ({_rate('stats_http_requests_total')})", "{{method}} {{route}}"),),
    ),
    Panel(
        "Latency p50 and p99 by route",
        "Time to answer, from the service's latency histogram (buckets from 1 ms to 5 s).",
        "s",
        (_latency(0.5), _latency(0.99)),
    ),
    Panel(
        "5xx responses",
        "Server errors per second, by route and status.",
        "reqps",
        (
            Query(
                "sum by (route, status) (" + _rate("stats_http_requests_total", 'status=~"5.."') + ")",
                "{{status}} {{route}}",
            ),
        ),
    ),
    Panel(
        "Cache hit ratio",
        "Share of aggregate reads that Redis answered; a miss rebuilds the aggregate from DynamoDB.",
        "percentunit",
        (Query(_hit_ratio(), "hit ratio"),),
    ),
    Panel(
        "Rebuilds",
        "Aggregates rebuilt from DynamoDB per second (after Redis lost them, or for a first read).",
        "ops",
        (Query(f"sum({_rate('stats_cache_rebuilds_total')})", "rebuilds"),),
    ),
    Panel(
        "Fallback reads",
        "Aggregates served from DynamoDB without being cached, per second: Redis was unavailable or busy.",
        "ops",
        (Query(f"sum({_rate('stats_cache_fallback_reads_total')})", "fallback reads"),),
    ),
    Panel(
        "Dependency errors",
        "Failed calls to Redis and DynamoDB per second, by reason, and the calls retried.",
        "ops",
        (
            Query(
                f"sum by (dependency, reason) ({_rate('stats_dependency_errors_total')})", "{{dependency}} {{reason}}"
            ),
            Query(f"sum by (dependency) ({_rate('stats_dependency_retries_total')})", "{{dependency}} retries"),
        ),
    ),
    Panel(
        "Redis circuit state",
        "The Redis circuit breaker (0 closed, 1 open, 2 half-open; the highest over the tasks), "
        "and the aggregates awaiting repair after an update Redis missed.",
        "short",
        (
            Query(f"max({_selector('stats_redis_circuit_state')})", "circuit state"),
            Query(f"sum({_selector('stats_cache_stale_aggregates')})", "stale aggregates"),
        ),
    ),
    _cloudwatch(
        "DynamoDB consumed capacity",
        "Read and write capacity units consumed per second by the table and its indexes.",
        "short",
        Query(f"sum({_table('consumed_read_capacity_units_sum')}) / {CLOUDWATCH_PERIOD_SECONDS}", "read units/s"),
        Query(f"sum({_table('consumed_write_capacity_units_sum')}) / {CLOUDWATCH_PERIOD_SECONDS}", "write units/s"),
    ),
    _cloudwatch(
        "DynamoDB throttles",
        "Requests throttled per period, by operation.",
        "short",
        Query(f"sum by (operation) ({_table('throttled_requests_sum')})", "{{operation}}"),
    ),
    _cloudwatch(
        "ElastiCache CPU",
        "CPU of the Redis engine thread and of the host, per node (percent).",
        "percent",
        _per_node("engine_cpuutilization_average", "engine"),
        _per_node("cpuutilization_average", "host"),
    ),
    _cloudwatch(
        "ElastiCache memory",
        "Share of the node's memory for data that Redis uses (percent); evictions start near 100.",
        "percent",
        _per_node("database_memory_usage_percentage_average"),
    ),
    _cloudwatch(
        "ElastiCache evictions",
        "Keys evicted per period for lack of memory; an evicted aggregate is rebuilt on its next read.",
        "short",
        _per_node("evictions_sum", aggregation="sum"),
    ),
)


def interpolate(expr: str, rate_interval: str) -> str:
    """``expr`` with Grafana's variables replaced: every target (the "All" value, ``.*``) and ``rate_interval``."""
    return _VARIABLES.sub(lambda match: rate_interval if match[1] == "__rate_interval" else ".*", expr)
