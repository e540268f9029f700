"""OpenTelemetry traces: exported by OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, no work at all when not.

When the variable (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, the app gets
a TracerProvider of its own (X-Ray compatible trace ids, a batch span processor
and the OTLP/HTTP exporter, both configured by the SDK's standard ``OTEL_*``
variables: ``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``, ...),
shut down (flushing its spans) when the app is cleaned up. The spans:

- one server span per request, named by the route's template (``GET
  /courses/{courseId}``) so ids never land in a span's name, continuing the
  caller's W3C ``traceparent`` or an ``X-Amzn-Trace-Id`` that names a parent (an ALB's own
  names only a root, so it starts a new trace);
- a client span for each call of the DynamoDB wire (``service.dynamodb.wire``)
  and of the aioboto3 client (from its ``before-parameter-build`` to its ``after-call``
  event);
- a client span for each script on the Redis channels (``service.redis.channel``)
  and for each command through redis-py (``opentelemetry-instrumentation-redis``).

When it is not set, the app is as it was: no provider, no middleware, and the
wire and the cache hold no span maker, which they check once per call.

The server span is made here rather than by ``opentelemetry-instrumentation-aiohttp-server``:
that package's middleware works only once its instrumentor has replaced
``aiohttp.web.Application`` for the whole process (its meters and counters are
module globals set then), records its own request metrics beside the service's
Prometheus ones, and collects a dozen attributes per request.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from redis.asyncio import RedisCluster

from service.http.middleware import route_name

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript
    from redis.typing import EncodableT

    from service.dynamodb.client import DynamoDB
    from service.redis.cache import AggregateCache
    from service.redis.channel import Scripts

T = TypeVar("T")

_SPAN = "otel_span"  # where a call's span waits in botocore's request context

DEFAULT_SERVICE_NAME = "learning-stats"
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# The last one that finds a context wins: a traceparent over the ALB's X-Ray header.
_PROPAGATOR = CompositePropagator([AwsXRayPropagator(), TraceContextTextMapPropagator()])


def enabled(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` names an OTLP endpoint for traces, and does not disable the SDK."""
    disabled = environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    return not disabled and any(environ.get(name) for name in _ENDPOINTS)


def _resource() -> Resource:
    resource = Resource.create()
    # The SDK names an unnamed service "unknown_service"; OTEL_SERVICE_NAME still wins.
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


class DynamoSpans:
    """Client spans of the calls to one DynamoDB endpoint, of the wire's and of the aioboto3 client's."""

    def __init__(self, tracer: Tracer, url: str) -> None:
        self._tracer = tracer
        parts = urlsplit(url)
        self._server = {"server.address": parts.hostname or "", "server.port": parts.port or 443}

    def _attributes(self, operation: str, table: object) -> dict[str, Any]:
        attributes = {
            "db.system": "dynamodb",
            "rpc.system": "aws-api",
            "rpc.service": "DynamoDB",
            "rpc.method": operation,
            **self._server,
        }
        if table:
            attributes["aws.dynamodb.table_names"] = [str(table)]
        return attributes

    async def call(self, operation: str, request: Mapping[str, Any], call: Awaitable[T]) -> T:
        """``call``, one operation of the wire with its retries, inside a client span."""
        attributes = self._attributes(operation, request.get("TableName"))
        with self._tracer.start_as_current_span(f"DynamoDB.{operation}", kind=SpanKind.CLIENT, attributes=attributes):
            return await call

    # botocore's events, which aiobotocore emits around each call.
    def before_parameter_build(self, model: Any, params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[_SPAN] = self._tracer.start_span(
            f"DynamoDB.{model.name}",
            kind=SpanKind.CLIENT,
            attributes=self._attributes(model.name, params.get("TableName")),
        )

    def after_call(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        span = context.pop(_SPAN, None)
        if span is not None:
            span.set_attribute("http.response.status_code", http_response.status_code)
            if http_response.status_code >= 400:
                span.set_status(Status(StatusCode.ERROR))
            span.end()

    def after_call_error(self, exception: BaseException, context: dict[str, Any], **_: Any) -> None:
        span = context.pop(_SPAN, None)
        if span is not None:
            span.record_exception(exception)
            span.set_status(Status(StatusCode.ERROR, type(exception).__name__))
            span.end()


class RedisSpans:
    """Client spans of the scripts on the lean channels to Redis (named by its URL: in a cluster, the seed's)."""

    def __init__(self, tracer: Tracer, url: str) -> None:
        self._tracer = tracer
        self._attributes: dict[str, Any] = {"db.system": "redis", "db.operation.name": "EVALSHA"}
        parts = urlsplit(url)
        if parts.scheme == "unix":
            self._attributes.update({"server.address": parts.path, "network.transport": "unix"})
        else:
            self._attributes.update({"server.address": parts.hostname or "", "server.port": parts.port or 6379})

    async def run(self, scripts: Scripts, script: AsyncScript, keys: list[str], args: Sequence[EncodableT]) -> Any:
        """``scripts.run`` of a script inside a client span."""
        with self._tracer.start_as_current_span("EVALSHA", kind=SpanKind.CLIENT, attributes=self._attributes):
            return await scripts.run(script, keys, args)


def _name_redis(span: Span, *_: Any) -> None:
    if span.is_recording():
        span.set_attribute("db.system", "redis")


class Tracing:
    """An app's traces, made by :func:`install`: a provider from start-up to cleanup."""

    def __init__(self) -> None:
        self._provider: TracerProvider | None = None
        self._tracer: Tracer | None = None

    async def ctx(self, _: web.Application) -> AsyncIterator[None]:
        """The provider's life: made before the clients, shut down (its spans flushed) after them."""
        provider = TracerProvider(resource=_resource(), id_generator=AwsXRayIdGenerator())
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self._provider, self._tracer = provider, provider.get_tracer("service")
        try:
            yield
        finally:
            self._provider = self._tracer = None
            # Off the loop: the last export may take the exporter's timeout, and blocks while it runs.
            await asyncio.to_thread(provider.shutdown)

    def trace_dynamodb(self, clients: DynamoDB) -> None:
        """Spans for the calls of both DynamoDB clients (none while traces are off)."""
        tracer = self._tracer
        if tracer is None:
            return
        spans = DynamoSpans(tracer, clients.client.meta.endpoint_url)
        clients.wire.spans = spans
        events = clients.client.meta.events
        events.register("before-parameter-build.dynamodb", spans.before_parameter_build)
        events.register("after-call.dynamodb", spans.after_call)
        events.register("after-call-error.dynamodb", spans.after_call_error)

    def trace_redis(self, redis: Redis | RedisCluster, cache: AggregateCache, url: str) -> None:
        """Spans for the cache's scripts on its channel and for every redis-py command (none while off)."""
        tracer = self._tracer
        if tracer is None:
            return
        cache.spans = RedisSpans(tracer, url)
        # The instrumentation names the database on a plain client's spans, not on a cluster client's.
        hook = _name_redis if isinstance(redis, RedisCluster) else None
        RedisInstrumentor.instrument_client(redis, tracer_provider=self._provider, request_hook=hook)

    def middleware(self) -> Middleware:
        """The server span of each request, outside the request envelope, so it sees the answer's status."""
        tracing = self

        @web.middleware
        async def trace_request(request: web.Request, handler: Handler) -> web.StreamResponse:
            tracer = tracing._tracer
            assert tracer is not None, "requests are served between start-up and cleanup"
            route = route_name(request)
            attributes = {"http.request.method": request.method, "http.route": route, "url.scheme": request.scheme}
            with tracer.start_as_current_span(
                f"{request.method} {route}",
                context=_PROPAGATOR.extract(request.headers),
                kind=SpanKind.SERVER,
                attributes=attributes,
            ) as span:
                response = await handler(request)
                span.set_attribute("http.response.status_code", response.status)
                if response.status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                return response

        return trace_request


OFF = Tracing()


def install(app: web.Application, environ: Mapping[str, str] = os.environ) -> Tracing:
    """Traces for ``app`` if ``environ`` names an OTLP endpoint (its middleware and provider first), else ``OFF``."""
    if not enabled(environ):
        return OFF
    tracing = Tracing()
    app.middlewares.insert(0, tracing.middleware())
    app.cleanup_ctx.insert(0, tracing.ctx)
    return tracing
