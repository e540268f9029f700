"""Prometheus metrics, one registry per application so tests never share counters.

With several gunicorn workers, ``/metrics`` is answered by whichever worker accepted the
scrape, so each worker also writes its numbers into its own files in
``PROMETHEUS_MULTIPROC_DIR`` and a scrape reads every worker's files (prometheus_client's
multiprocess mode, chosen when that variable is set before prometheus_client is imported:
``service/gunicorn_conf.py`` sets it up). One process (``python -m service``, local mode,
the tests, one gunicorn worker) keeps everything in its own registry.

Requests and their latency stay plain numbers in either mode, copied into the worker's
files once a second and before the worker answers a scrape, since prometheus_client's
file-backed values cost several times more per update. Measured with timeit (200 000
calls, best of seven, on a shared 2-core machine): ``observe_request``
0.43 µs in either mode, where writing each request's counter, bucket and sum to the files
would cost 2.0-2.2 µs (prometheus_client's own labelled Counter and Histogram children,
2.5 µs); a cached read's updates (``cache_hits`` and ``observe_request``) 0.79-0.84 µs in
one process and 1.28-1.40 µs with several workers, the difference being ``cache_hits``'
file-backed counter; one publication of 355 request series 0.41 ms.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BOUNDS = (*map(floatToGoString, _LATENCY_BUCKETS), "+Inf")
_REQUESTS = ("stats_http_requests", "HTTP requests answered")
_LATENCY = ("stats_http_request_duration_seconds", "Time to answer an HTTP request")
# How stale another worker's request numbers may be in a scrape.
PUBLISH_SECONDS = 1.0


def _multiprocess() -> bool:
    """Whether prometheus_client chose its file-backed values when it was imported."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


class _Value(Protocol):
    def set(self, value: float, timestamp: float | None = None) -> None: ...


class _SharedValues:
    """This process's values in its multiprocess files, one per series, made on first use."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, tuple[str, ...]], _Value] = {}

    def set(self, kind: str, metric: tuple[str, str], sample: str, labels: dict[str, str], value: float) -> None:
        name, help_text = metric
        key = (sample, tuple(labels.values()))
        shared = self._values.get(key)
        if shared is None:
            shared = self._values[key] = values.ValueClass(
                kind, name, sample, tuple(labels), tuple(labels.values()), help_text
            )
        shared.set(value)


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
        requests = CounterMetricFamily(*_REQUESTS, labels=["method", "route", "status"])
        for (method, route, status), count in self._counts.items():
            requests.add_metric([method, route, str(status)], count, created=self._created)
        yield requests
        latency = HistogramMetricFamily(*_LATENCY, labels=["method", "route"])
        for (method, route), buckets in self._buckets.items():
            cumulative = zip(_BOUNDS, itertools.accumulate(buckets), strict=True)
            latency.add_metric([method, route], list(cumulative), self._sums[method, route])
        yield latency

    def publish(self, shared: _SharedValues) -> None:
        """Write the totals into this process's files, as prometheus_client's Counter and Histogram
        would have: buckets not cumulative, the count left to the reader."""
        for (method, route, status), count in self._counts.items():
            labels = {"method": method, "route": route, "status": str(status)}
            shared.set("counter", _REQUESTS, f"{_REQUESTS[0]}_total", labels, count)
        for (method, route), buckets in self._buckets.items():
            for bound, count in zip(_BOUNDS, buckets, strict=True):
                labels = {"method": method, "route": route, "le": bound}
                shared.set("histogram", _LATENCY, f"{_LATENCY[0]}_bucket", labels, count)
            labels = {"method": method, "route": route}
            shared.set("histogram", _LATENCY, f"{_LATENCY[0]}_sum", labels, self._sums[method, route])


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = _multiprocess()
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = _RequestMetrics()
        self._shared = _SharedValues()
        # Several workers: a scrape reads every worker's files, this one's included, and nothing else.
        registry: CollectorRegistry | None = None
        if self.multiprocess:
            MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        else:
            registry = self.registry
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
        self.redis_redirections = Counter(
            "stats_redis_redirections",
            "Scripts a Redis Cluster redirected and the service sent on, by kind (moved, ask, tryagain)",
            ["kind"],
            registry=registry,
        )
        self.slow_path_reads = Counter(
            "stats_cache_slow_path_reads",
            "Cached reads sent through redis-py because the lean script channel cannot serve the Redis URL",
            registry=registry,
        )
        # Each worker has its own breaker: one series per live worker (label pid) with several.
        self.circuit_state = Gauge(
            "stats_redis_circuit_state",
            "Redis circuit: 0 closed, 1 open, 2 half-open",
            registry=registry,
            multiprocess_mode="liveall",
        )
        # Each worker repairs the aggregates it failed to update: the task's total with several.
        self.stale_aggregates = Gauge(
            "stats_cache_stale_aggregates",
            "Aggregates awaiting repair after a missed update",
            registry=registry,
            multiprocess_mode="livesum",
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and record how long it took."""
        self._requests.observe(method, route, status, seconds)

    def publish(self) -> None:
        """With several workers, bring this worker's request numbers in its files up to date."""
        if self.multiprocess:
            self._requests.publish(self._shared)

    async def keep_published(self, sample: Callable[[], None]) -> None:
        """With several workers, ``sample`` (the gauges) and publish every PUBLISH_SECONDS, so that
        a scrape answered by another worker sees this one's numbers that fresh."""
        while True:
            await asyncio.sleep(PUBLISH_SECONDS)
            sample()
            self.publish()
