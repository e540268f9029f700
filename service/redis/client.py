"""The redis-py client, configured to fail fast rather than hang, and the cache on it."""

from __future__ import annotations

from prometheus_client import Counter
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from service.redis.breaker import CircuitBreaker
from service.redis.cache import AggregateCache
from service.redis.channel import ScriptChannel, Scripts
from service.redis.cluster import ClusterChannel
from service.redis.failover import PrimaryWatch
from service.settings import Settings


def redis_client(url: str, timeout_seconds: float, watch: PrimaryWatch | None = None) -> Redis:
    """A client whose every new connection first checks the primary with ``watch``."""
    return Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        # Failing fast is the point: the breaker and the DynamoDB fallback handle outages.
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
        redis_connect_func=watch.on_redis_py_connect if watch is not None else None,
    )


def cluster_client(url: str, timeout_seconds: float) -> tuple[RedisCluster, ClusterChannel]:
    """redis-py's cluster client for the URL's cluster, and the channels the cache's scripts take.

    Every script goes through the channels, which read each primary's replication id: a
    completion is only trusted on the node it was made on (``service.redis.failover``)."""
    # Never connected: it describes, from the URL alone, what a connection to any node needs.
    template = ScriptChannel.for_client(redis_client(url, timeout_seconds))
    assert template is not None, "load_settings refuses a cluster URL the channel does not understand"
    cluster = RedisCluster.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 0),
    )
    return cluster, ClusterChannel(cluster, template)


def open_cache(settings: Settings, slow_reads: Counter | None = None) -> tuple[Redis | RedisCluster, AggregateCache]:
    """The Redis client and the aggregate cache that ``settings`` describe."""
    assert settings.redis_url is not None, "local mode or the production profile provides a Redis URL"
    watch = PrimaryWatch()
    redis: Redis | RedisCluster
    scripts: Scripts | None = None
    if settings.redis_cluster:
        redis, scripts = cluster_client(settings.redis_url, settings.redis_timeout_seconds)
    else:
        redis = redis_client(settings.redis_url, settings.redis_timeout_seconds, watch)
    cache = AggregateCache(
        redis,
        ttl_seconds=settings.cache_ttl_seconds,
        max_age_seconds=settings.cache_max_age_seconds,
        lock_seconds=settings.rebuild_lock_seconds,
        breaker=CircuitBreaker(reset_seconds=1.0),
        slow_reads=slow_reads,
        watch=watch,
        scripts=scripts,
        module_types=settings.module_types.ids,
    )
    return redis, cache
