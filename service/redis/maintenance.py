"""The cache's background upkeep: probe an open Redis circuit, repair stale aggregates."""

from __future__ import annotations

import asyncio
import logging

from service.domain.errors import CacheUnavailable
from service.redis.cache import AggregateCache

log = logging.getLogger(__name__)

# How often the background task probes an open Redis circuit and repairs stale aggregates.
INTERVAL_SECONDS = 0.5


async def maintain(cache: AggregateCache, interval: float = INTERVAL_SECONDS) -> None:
    """Run until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            if not cache.healthy:
                await cache.ping()
            if cache.stale_count:
                repaired = await cache.repair()
                log.info("repaired stale aggregates", extra={"count": repaired})
        except CacheUnavailable:
            continue
