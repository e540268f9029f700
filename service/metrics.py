"""Prometheus metrics, one registry per application so tests never share counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter(
            "stats_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "stats_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
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
        self.circuit_state = Gauge(
            "stats_redis_circuit_state", "Redis circuit: 0 closed, 1 open, 2 half-open", registry=registry
        )
        self.stale_aggregates = Gauge(
            "stats_cache_stale_aggregates", "Aggregates awaiting repair after a missed update", registry=registry
        )
