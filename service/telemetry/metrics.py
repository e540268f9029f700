"""Prometheus metrics, one registry per application so tests never share counters."""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _RequestMetrics(Collector):
    """Requests answered and their latency, kept in plain numbers and turned into
    Prometheus samples only when scraped: prometheus_client's own counter and
    histogram take locks and several calls per update, paid on every request.
    Updated and scraped on the event loop's thread only."""

    def __init__(self) -> None:
        self._created = time.time()
        self._counts: dict[tuple[str, str, int], int] = {}
        self._buckets: dict[tuple[str, str], list[int]] = {}
        self._sums: dict[tuple[str, str], float] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        series = (method, route)
        buckets = self._buckets.get(series)
        if buckets is None:
            buckets = self._buckets[series] = [0] * (len(_LATENCY_BUCKETS) + 1)
            self._sums[series] = 0.0
        # The first bucket whose bound is at least ``seconds``, as Histogram.observe picks it.
        buckets[bisect.bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        self._sums[series] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "stats_http_requests", "HTTP requests answered", labels=["method", "route", "status"]
        )
        for (method, route, status), count in self._counts.items():
            requests.add_metric([method, route, str(status)], count, created=self._created)
        yield requests
        latency = HistogramMetricFamily(
            "stats_http_request_duration_seconds", "Time to answer an HTTP request", labels=["method", "route"]
        )
        bounds = [*map(floatToGoString, _LATENCY_BUCKETS), "+Inf"]
        for (method, route), buckets in self._buckets.items():
            cumulative = zip(bounds, itertools.accumulate(buckets), strict=True)
            latency.add_metric([method, route], list(cumulative), self._sums[method, route])
        yield latency


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._requests = _RequestMetrics()
        registry.register(self._requests)
        self.cache_hits = Counter("stats_cache_hits", "Aggregate reads answered by Redis", registry=registry)
        self.cache_misses = Counter(
            "stats_cache_misses", "Aggregate reads that Redis could not answer", registry=registry
        )
        self.rebuilds = Counter("stats_cache_rebuilds", "Aggregates rebuilt from DynamoDB", registry=registry)
        self.rebuild_seconds = Histogram(
            "stats_cache_rebuild_duration_seconds",
            "Time to query DynamoDB for a rebuild",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.fallback_reads = Counter(
            "stats_cache_fallback_reads",
            "Aggregates served from DynamoDB without being cached (Redis unavailable or busy)",
            registry=registry,
        )
        self.dependency_errors = Counter(
            "stats_dependency_errors", "Failed dependency calls", ["dependency", "reason"], registry=registry
        )
        self.dependency_retries = Counter(
            "stats_dependency_retries", "Dependency calls retried", ["dependency"], registry=registry
        )
        self.slow_path_reads = Counter(
            "stats_cache_slow_path_reads",
            "Cached reads sent through redis-py because the lean script channel cannot serve the Redis URL",
            registry=registry,
        )
        self.circuit_state = Gauge(
            "stats_redis_circuit_state", "Redis circuit: 0 closed, 1 open, 2 half-open", registry=registry
        )
        self.stale_aggregates = Gauge(
            "stats_cache_stale_aggregates", "Aggregates awaiting repair after a missed update", registry=registry
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and record how long it took."""
        self._requests.observe(method, route, status, seconds)
