"""Every typed application key, declared in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from service.cache import AggregateCache
from service.deadlines import Deadlines
from service.metrics import Metrics
from service.settings import Settings
from service.stats import StatsService
from service.store import SessionStore

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from types_aiobotocore_dynamodb import DynamoDBClient

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
DYNAMODB: web.AppKey[DynamoDBClient] = web.AppKey("dynamodb")
REDIS: web.AppKey[Redis] = web.AppKey("redis")
STORE = web.AppKey("store", SessionStore)
CACHE = web.AppKey("cache", AggregateCache)
STATS = web.AppKey("stats", StatsService)
DEADLINES = web.AppKey("deadlines", Deadlines)
