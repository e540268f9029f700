"""An OTLP/HTTP traces receiver for the tests: it decodes what the service exports and keeps the spans."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from pytest_aiohttp import AiohttpServer


@dataclasses.dataclass
class Exported:
    """What the receiver was sent: spans by name, and the resource's attributes."""

    spans: list[Span] = dataclasses.field(default_factory=list)
    resource: dict[str, str] = dataclasses.field(default_factory=dict)

    def named(self, name: str) -> list[Span]:
        return [span for span in self.spans if span.name == name]

    def children(self, parent: Span) -> list[Span]:
        return [span for span in self.spans if span.parent_span_id == parent.span_id]


async def otlp_receiver(aiohttp_server: AiohttpServer, monkeypatch: pytest.MonkeyPatch) -> Exported:
    """A receiver, named to the apps created next by the standard variable."""
    exported = Exported()

    async def traces(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in message.resource_spans:
            exported.resource.update(
                (attribute.key, attribute.value.string_value) for attribute in resource_spans.resource.attributes
            )
            for scope_spans in resource_spans.scope_spans:
                exported.spans.extend(scope_spans.spans)
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    server: TestServer = await aiohttp_server(app)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", str(server.make_url("")))
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    return exported


def attributes(span: Span) -> dict[str, Any]:
    """A span's attributes as Python values (a list for an array)."""
    values: dict[str, Any] = {}
    for attribute in span.attributes:
        value = attribute.value
        kind = value.WhichOneof("value")
        values[attribute.key] = (
            [item.string_value for item in value.array_value.values] if kind == "array_value" else getattr(value, kind)
        )
    return values
