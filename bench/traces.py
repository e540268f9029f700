"""The cached read with traces on: a second service exporting every request's spans by OTLP/HTTP.

The spans go to a sink in the bench's process (on the load core), which decodes
each export to count its spans and discards them, so the server core's CPU per
request is the service's cost of tracing: the spans, their ids, the batch
processor's queue and the exporter's thread encoding and sending them. Every
request is sampled (the SDK's default sampler), the most tracing can cost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from bench.stack import SERVICE_APP, Cores, Gunicorn
from localmode.servers import free_port

_ANSWER = ExportTraceServiceResponse().SerializeToString()


class Sink:
    """An OTLP/HTTP traces endpoint that counts the spans it is sent, and the server spans named ``server``."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.spans = 0
        self.requests = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    async def _traces(self, request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest.FromString(await request.read())
        for spans in (scope.spans for resource in message.resource_spans for scope in resource.scope_spans):
            self.spans += len(spans)
            self.requests += sum(span.kind == Span.SPAN_KIND_SERVER and span.name == self.server for span in spans)
        return web.Response(body=_ANSWER, content_type="application/x-protobuf")

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Sink]:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._traces)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        try:
            yield self
        finally:
            await runner.cleanup()


async def traced_reads(
    saturate: Callable[[Gunicorn], Awaitable[dict[str, Any]]], route: str, rounds: int, log: Path, cores: Cores
) -> dict[str, Any]:
    """Saturation on a service (``log``'s) whose traces are on: the best of ``rounds`` after a warm-up round,
    how many of the requests answered (``route``'s) were exported, and the spans of each."""
    async with Sink(route).serving() as sink:
        # On top of this process's variables, which are the other service's.
        traced = {"STATS_PORT": str(free_port()), "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url}
        service = Gunicorn(SERVICE_APP, traced, log, cores)
        service.start()
        try:
            # In threads: the sink answers on this loop meanwhile (the last spans are sent as the service stops).
            await asyncio.to_thread(service.wait_ready)
            warm = await saturate(service)
            measured = [await saturate(service) for _ in range(rounds)]
        finally:
            await asyncio.to_thread(service.stop)
    answered = sum(int(result["requests"]) for result in (warm, *measured))
    return {
        "saturation": max(measured, key=lambda result: float(result["rps"])),
        "rounds": [result["rps"] for result in measured],
        "exported_share": round(sink.requests / answered, 3),
        "spans_per_request": round(sink.spans / sink.requests, 2) if sink.requests else None,
    }
