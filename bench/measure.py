"""What one load run measured, whichever tool produced it."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class LoadResult:
    """Throughput and latency of one run; ``offered_rps`` is set for fixed-rate runs."""

    tool: str
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    offered_rps: float | None = None
    generator_lag_p99_ms: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "rps": round(self.rps, 1)}

    @classmethod
    def from_latencies(
        cls, tool: str, latencies: Sequence[float], seconds: float, errors: int, offered_rps: float | None = None
    ) -> LoadResult:
        """From per-request latencies in seconds."""
        ordered = sorted(latencies)
        return cls(
            tool=tool,
            requests=len(ordered),
            seconds=seconds,
            errors=errors,
            p50_ms=percentile(ordered, 50) * 1000,
            p90_ms=percentile(ordered, 90) * 1000,
            p99_ms=percentile(ordered, 99) * 1000,
            max_ms=(ordered[-1] if ordered else 0.0) * 1000,
            offered_rps=offered_rps,
        )


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def metric_samples(text: str) -> dict[str, float]:
    """Prometheus text as ``{'name{label="v"}': value}``, labels sorted, unlabelled samples by bare name."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


async def closed_loop(
    operation: Callable[[int], Awaitable[object]], *, seconds: float, concurrency: int, tool: str
) -> LoadResult:
    """``concurrency`` workers calling ``operation(n)`` back to back for ``seconds``, n counting calls.

    As wrk does, only calls that finish within the window count, over the window's length.
    """
    latencies: list[float] = []
    counter = itertools.count()
    errors = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def worker() -> None:
        nonlocal errors
        while (begun := time.perf_counter()) < deadline:
            try:
                await operation(next(counter))
            except Exception:  # a failed call is counted, like a non-2xx answer in wrk
                errors += 1
                continue
            if (finished := time.perf_counter()) <= deadline:
                latencies.append(finished - begun)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult.from_latencies(tool, latencies, seconds, errors)
