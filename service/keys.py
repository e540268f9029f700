"""Every typed application key, declared in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from service.accounts.cognito import CognitoAccounts
from service.auth.tokens import TokenVerifier
from service.domain.courses import Courses
from service.domain.erasures import Erasures
from service.domain.identity import Identity
from service.domain.stats import StatsService
from service.dynamodb.store import SessionStore
from service.http.cursors import Cursors
from service.http.deadlines import Deadlines
from service.redis.cache import AggregateCache
from service.settings import Settings
from service.telemetry.metrics import Metrics

if TYPE_CHECKING:
    # Only its type: tracing imports the HTTP layer (route names), which imports these keys.
    from service.telemetry.tracing import Tracing

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
STORE = web.AppKey("store", SessionStore)
CACHE = web.AppKey("cache", AggregateCache)
STATS = web.AppKey("stats", StatsService)
ERASURES = web.AppKey("erasures", Erasures)
COURSES = web.AppKey("courses", Courses)
DEADLINES = web.AppKey("deadlines", Deadlines)
CURSORS = web.AppKey("cursors", Cursors)
# Off (no provider, no middleware) unless OTEL_EXPORTER_OTLP_ENDPOINT is set.
TRACING: web.AppKey[Tracing] = web.AppKey("tracing")
# Who the request acts for, once identified: the access log names them (hashed).
IDENTITY = web.RequestKey("identity", Identity)
# None where no identity provider is configured: tokens are then refused.
VERIFIER: web.AppKey[TokenVerifier | None] = web.AppKey("verifier")
# None where no user pool is configured: the account routes then answer 404.
ACCOUNTS: web.AppKey[CognitoAccounts | None] = web.AppKey("accounts")
