"""The redis-py client, configured to fail fast rather than hang."""

from __future__ import annotations

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from service.redis.breaker import CircuitBreaker
from service.redis.cache import AggregateCache
from service.redis.failover import PrimaryWatch
from service.settings import Settings


def redis_client(url: str, timeout_seconds: float, watch: PrimaryWatch | None = None) -> Redis:
    """A client whose every new connection first checks the primary's epoch with ``watch``."""
    return Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        # Failing fast is the point: the breaker and the DynamoDB fallback handle outages.
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
        redis_connect_func=watch.on_redis_py_connect if watch is not None else None,
    )


def open_cache(settings: Settings, slow_reads: Counter | None = None) -> tuple[Redis, AggregateCache]:
    """The Redis client and the aggregate cache that ``settings`` describe, sharing one primary watch."""
    assert settings.redis_url is not None, "local mode or the production profile provides a Redis URL"
    watch = PrimaryWatch()
    redis = redis_client(settings.redis_url, settings.redis_timeout_seconds, watch)
    cache = AggregateCache(
        redis,
        ttl_seconds=settings.cache_ttl_seconds,
        max_age_seconds=settings.cache_max_age_seconds,
        lock_seconds=settings.rebuild_lock_seconds,
        breaker=CircuitBreaker(reset_seconds=1.0),
        slow_reads=slow_reads,
        watch=watch,
        module_types=settings.module_types.ids,
    )
    return redis, cache
