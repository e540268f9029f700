"""Traces' switch (the OTLP endpoint variables), the aioboto3 and wire spans' ends, and the trace ids in log lines."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from service import keys
from service.app import create_app
from service.http.middleware import request_envelope
from service.settings import Settings
from service.telemetry import tracing
from service.telemetry.logs import JsonFormatter

ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@pytest.fixture(autouse=True)
def no_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*ENDPOINTS, "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)


def test_without_an_endpoint_the_app_has_no_tracing_at_all() -> None:
    app = create_app(Settings())
    assert list(app.middlewares) == [request_envelope]
    assert app[keys.TRACING] is tracing.OFF
    assert not any(isinstance(getattr(ctx, "__self__", None), tracing.Tracing) for ctx in app.cleanup_ctx)
    # Nothing was set for the process either.
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


@pytest.mark.parametrize("variable", ENDPOINTS)
def test_an_endpoint_puts_the_server_span_first_and_the_provider_first(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "http://127.0.0.1:4318")
    app = create_app(Settings())
    traced = app[keys.TRACING]
    assert traced is not tracing.OFF
    assert len(app.middlewares) == 2
    assert app.middlewares[1] is request_envelope
    assert app.cleanup_ctx[0] == traced.ctx
    # The app's provider is its own, never the process's.
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def test_the_sdk_disabled_by_its_variable_means_no_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "True")
    app = create_app(Settings())
    assert list(app.middlewares) == [request_envelope]
    assert app[keys.TRACING] is tracing.OFF


def _line(record: logging.LogRecord) -> dict[str, str]:
    parsed: dict[str, str] = orjson.loads(JsonFormatter().format(record))
    return parsed


def test_a_log_line_carries_the_recording_spans_ids_in_both_forms() -> None:
    record = logging.makeLogRecord({"msg": "request", "levelname": "INFO"})
    assert "trace_id" not in _line(record)
    provider = TracerProvider()
    with provider.get_tracer("test").start_as_current_span("request") as span:
        context = span.get_span_context()
        line = _line(record)
    trace_id = f"{context.trace_id:032x}"
    assert line["trace_id"] == trace_id
    assert line["span_id"] == f"{context.span_id:016x}"
    assert line["xray_trace_id"] == f"1-{trace_id[:8]}-{trace_id[8:]}"
    assert len(line["xray_trace_id"]) == 35
    assert "trace_id" not in _line(record)
    provider.shutdown()


def test_a_span_not_sampled_adds_nothing() -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    with provider.get_tracer("test").start_as_current_span("request"):
        line = _line(logging.makeLogRecord({"msg": "request"}))
    assert not {"trace_id", "span_id", "xray_trace_id"} & set(line)
    provider.shutdown()


@pytest.fixture
def exported() -> Iterator[tuple[InMemorySpanExporter, tracing.DynamoSpans]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter, tracing.DynamoSpans(provider.get_tracer("test"), "https://dynamodb.eu-west-1.amazonaws.com")
    provider.shutdown()


class _Operation:
    name = "BatchWriteItem"


class _Answer:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


@pytest.mark.parametrize(("status", "code"), [(200, StatusCode.UNSET), (400, StatusCode.ERROR)])
def test_an_aioboto3_call_is_a_span_from_its_parameters_to_its_answer(
    exported: tuple[InMemorySpanExporter, tracing.DynamoSpans], status: int, code: StatusCode
) -> None:
    exporter, spans = exported
    context: dict[str, Any] = {}
    spans.before_parameter_build(model=_Operation(), params={"RequestItems": {}}, context=context)
    assert not exporter.get_finished_spans()
    spans.after_call(http_response=_Answer(status), parsed={}, model=_Operation(), context=context)
    [span] = exporter.get_finished_spans()
    assert span.name == "DynamoDB.BatchWriteItem"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is code
    assert dict(span.attributes or {}) == {
        "db.system": "dynamodb",
        "rpc.system": "aws-api",
        "rpc.service": "DynamoDB",
        "rpc.method": "BatchWriteItem",
        "server.address": "dynamodb.eu-west-1.amazonaws.com",
        "server.port": 443,
        "http.response.status_code": status,
    }


def test_an_aioboto3_call_without_an_answer_is_an_error_span(
    exported: tuple[InMemorySpanExporter, tracing.DynamoSpans],
) -> None:
    exporter, spans = exported
    context: dict[str, Any] = {}
    spans.before_parameter_build(model=_Operation(), params={"TableName": "stats"}, context=context)
    spans.after_call_error(exception=EndpointConnectionError(endpoint_url="https://x"), context=context)
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "EndpointConnectionError"
    assert [event.name for event in span.events] == ["exception"]
    assert span.attributes is not None
    assert span.attributes["aws.dynamodb.table_names"] == ("stats",)


async def test_a_failed_wire_call_is_an_error_span_and_the_error_goes_on(
    exported: tuple[InMemorySpanExporter, tracing.DynamoSpans],
) -> None:
    exporter, spans = exported

    async def refused() -> dict[str, Any]:
        raise ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "UpdateItem")

    with pytest.raises(ClientError):
        await spans.call("UpdateItem", {"TableName": "stats"}, refused())
    [span] = exporter.get_finished_spans()
    assert span.name == "DynamoDB.UpdateItem"
    assert span.status.status_code is StatusCode.ERROR
