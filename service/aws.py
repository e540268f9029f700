"""aioboto3 clients of the AWS services the service calls, configured to fail fast rather than hang."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioCredentials

from service.settings import Settings


@functools.cache
def _aws_session() -> aioboto3.Session:
    # One per process: a session caches botocore's service models, which are slow to load.
    return aioboto3.Session()


@contextlib.asynccontextmanager
async def aws_client(settings: Settings, service: str, endpoint_url: str | None) -> AsyncIterator[Any]:
    """A client of ``service`` at ``endpoint_url`` (None: AWS's own), with the service's timeouts and retries."""
    config = AioConfig(
        connect_timeout=settings.dynamodb_timeout_seconds,
        read_timeout=settings.dynamodb_timeout_seconds,
        # total_max_attempts counts the first attempt; botocore's max_attempts would not.
        retries={"mode": "standard", "total_max_attempts": settings.dynamodb_max_attempts},
        max_pool_connections=64,
    )
    async with _aws_session().client(
        service,
        region_name=settings.aws_region,
        endpoint_url=endpoint_url,
        config=config,
        **_local_credentials(settings, endpoint_url),
    ) as client:
        yield client


def _local_credentials(settings: Settings, endpoint_url: str | None) -> dict[str, str]:
    if endpoint_url and settings.env != "production":
        # A local endpoint accepts any credentials; none need exist on the machine.
        return {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    return {}


async def client_credentials(settings: Settings, endpoint_url: str | None) -> Any:
    """The credentials ``aws_client`` gives its client at ``endpoint_url``: botocore's credentials
    object (refreshed as it is read), or None where the chain finds none."""
    local = _local_credentials(settings, endpoint_url)
    if local:
        return AioCredentials(local["aws_access_key_id"], local["aws_secret_access_key"])
    return await _aws_session().get_credentials()
