"""The trace context in Kafka record headers (services/common/tracing.py), and in the outbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.common import tracing
from services.common.settings import CommonSettings
from services.handoff.state.store import OutboxEntry

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@dataclass
class FakeRecord:
    headers: list[tuple[str, bytes | None]] | None
    topic: str = "chat.inbound"
    partition: int = 2
    offset: int = 41


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    yield exporter
    tracing.use(None)


def test_off_by_default_and_without_an_endpoint() -> None:
    tracing.configure(CommonSettings(), "router")
    assert not tracing.enabled()


def test_off_a_consumer_passes_the_trace_headers_on_as_they_are() -> None:
    record = FakeRecord(
        [("x-other", b"1"), ("traceparent", PARENT.encode()), ("tracestate", b"k=v"), ("n", None)]
    )
    expected = (("traceparent", PARENT.encode()), ("tracestate", b"k=v"))
    assert tracing.processed(record, tracing.now_ns()) == expected
    with tracing.processing(record) as headers:
        assert headers == expected
    assert tracing.processed(FakeRecord(None), 0) == ()
    with tracing.sending("chat.inbound") as span:
        assert span is None and tracing.inject(span) == ()


def test_inject_then_extract_gives_the_same_span_context(spans: InMemorySpanExporter) -> None:
    with tracing.sending("chat.inbound") as span:
        headers = tracing.inject(span)
    assert span is not None
    assert [k for k, _ in headers] == ["traceparent"]
    extracted = trace.get_current_span(tracing.extract(headers)).get_span_context()
    assert extracted.trace_id == span.get_span_context().trace_id
    assert extracted.span_id == span.get_span_context().span_id
    assert extracted.is_remote
    assert tracing.trace_id_of(headers) == trace.format_trace_id(extracted.trace_id)
    stored = tracing.extract(tracing.carrier_of(span))  # as the desk keeps it in Redis
    assert trace.get_current_span(stored).get_span_context() == extracted


def test_a_processed_record_is_a_child_span_whose_context_goes_on(
    spans: InMemorySpanExporter,
) -> None:
    record = FakeRecord([("traceparent", PARENT.encode()), ("tracestate", b"vendor=1")])
    started = tracing.now_ns()
    out = tracing.processed(record, started, {"handoff.mode": "human"})

    [span] = spans.get_finished_spans()
    assert span.name == "process chat.inbound" and span.kind == SpanKind.CONSUMER
    assert span.parent is not None
    assert trace.format_trace_id(span.parent.trace_id) == PARENT.split("-")[1]
    assert trace.format_span_id(span.parent.span_id) == PARENT.split("-")[2]
    assert span.start_time == started
    assert dict(span.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "chat.inbound",
        "messaging.destination.partition.id": "2",
        "messaging.kafka.offset": 41,
        "handoff.mode": "human",
    }
    sent = dict(out)
    assert sent["traceparent"].decode() == (
        f"00-{PARENT.split('-')[1]}-{trace.format_span_id(span.context.span_id)}-01"
    )
    assert sent["tracestate"] == b"vendor=1"  # the vendor's state goes on with the trace


def test_a_record_without_context_starts_a_trace(spans: InMemorySpanExporter) -> None:
    with tracing.processing(FakeRecord(None)) as headers:
        tracing.note("handoff.outcome", "answered")
    [span] = spans.get_finished_spans()
    assert span.parent is None
    assert (span.attributes or {})["handoff.outcome"] == "answered"
    assert tracing.trace_id_of(headers) == trace.format_trace_id(span.context.trace_id)


def test_an_unreadable_traceparent_is_no_parent(spans: InMemorySpanExporter) -> None:
    tracing.processed(FakeRecord([("traceparent", b"not a traceparent")]), 0)
    [span] = spans.get_finished_spans()
    assert span.parent is None
    assert tracing.trace_id_of([("traceparent", b"junk")]) is None


def test_outbox_entries_carry_each_records_trace_context() -> None:
    carrier = {"traceparent": PARENT}
    fields = {
        "out": json.dumps(
            [["outbound", "k", '{"type":"outbound_message"}', carrier], ["events", "k", "{}"]]
        )
    }
    entry = OutboxEntry.of(3, "1700000000000-1", fields)
    assert entry.outputs == [
        ("outbound", "k", '{"type":"outbound_message"}'),
        ("events", "k", "{}"),
    ]
    assert entry.traces == [carrier, {}]
    assert tracing.headers_of(entry.traces[0]) == (("traceparent", PARENT.encode()),)
