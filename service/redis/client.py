"""The redis-py client, configured to fail fast rather than hang, and the cache on it."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from service.redis.breaker import CircuitBreaker
from service.redis.cache import AggregateCache
from service.redis.channel import ScriptChannel, Scripts
from service.redis.cluster import ClusterChannel
from service.settings import Settings


def _fail_fast(timeout_seconds: float) -> dict[str, Any]:
    """The options every client here is made with, one node's or a cluster's."""
    # Failing fast is the point: the breaker and the DynamoDB fallback handle outages.
    return {
        "socket_timeout": timeout_seconds,
        "socket_connect_timeout": timeout_seconds,
        "retry": Retry(NoBackoff(), 0),
    }


def redis_client(url: str, timeout_seconds: float) -> Redis:
    return Redis.from_url(url, health_check_interval=30, **_fail_fast(timeout_seconds))


def cluster_client(
    url: str, timeout_seconds: float, redirections: Counter | None = None
) -> tuple[RedisCluster, ClusterChannel]:
    """redis-py's cluster client for the URL's cluster, and the channels the cache's scripts take.

    Every script goes through the channels, for the CPU a lean channel saves, as on one node."""
    # Never connected: it describes, from the URL alone, what a connection to any node needs.
    template = ScriptChannel.for_client(redis_client(url, timeout_seconds))
    assert template is not None, "load_settings refuses a cluster URL the channel does not understand"
    cluster = RedisCluster.from_url(url, **_fail_fast(timeout_seconds))
    return cluster, ClusterChannel(cluster, template, redirections)


def open_cache(
    settings: Settings, slow_reads: Counter | None = None, redirections: Counter | None = None
) -> tuple[Redis | RedisCluster, AggregateCache]:
    """The Redis client and the aggregate cache that ``settings`` describe; ``slow_reads`` counts the
    reads redis-py carries, ``redirections`` the cluster's that the scripts followed."""
    assert settings.redis_url is not None, "local mode or the production profile provides a Redis URL"
    redis: Redis | RedisCluster
    scripts: Scripts | None = None
    if settings.redis_cluster:
        redis, scripts = cluster_client(settings.redis_url, settings.redis_timeout_seconds, redirections)
    else:
        redis = redis_client(settings.redis_url, settings.redis_timeout_seconds)
    cache = AggregateCache(
        redis,
        ttl_seconds=settings.cache_ttl_seconds,
        max_age_seconds=settings.cache_max_age_seconds,
        lock_seconds=settings.rebuild_lock_seconds,
        breaker=CircuitBreaker(reset_seconds=1.0),
        slow_reads=slow_reads,
        scripts=scripts,
        module_types=settings.module_types.ids,
    )
    return redis, cache
