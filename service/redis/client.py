"""The redis-py client, configured to fail fast rather than hang."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from service.redis.failover import PrimaryWatch


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
