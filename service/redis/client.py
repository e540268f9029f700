"""The redis-py client, configured to fail fast rather than hang."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def redis_client(url: str, timeout_seconds: float) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        # Failing fast is the point: the breaker and the DynamoDB fallback handle outages.
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )
