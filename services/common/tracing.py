"""OpenTelemetry tracing: one user message is one trace, across every topic it goes through.

The W3C trace context (`traceparent`, `tracestate`) travels in Kafka record headers: the web
chat starts the trace when it sends the message, and every service that makes records out of
a record continues it with a span of its own (OpenTelemetry's messaging conventions: `send
<topic>` for a producer, `process <topic>` for a consumer) and puts that span's context on
the records it writes. A desk reply made through the operator API is a child of the context
of the latest record the desk was given for that conversation (services/handoff/api/desk.py).

Off unless an OTLP endpoint is set (`HANDOFF_OTEL_EXPORTER_OTLP_ENDPOINT`). While off, no
span is made at all, and a consumer copies the trace headers of its input onto its outputs
as they are, so a trace still goes through a service that does not export. Spans carry
topic, partition, offset and outcomes (mode, verdict), never message text, keys (they name
the end user) or any other personal data. The SDK's standard `OTEL_TRACES_SAMPLER` settings
apply (e.g. `parentbased_traceidratio`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Protocol

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.common.settings import CommonSettings

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACE_HEADERS = (TRACEPARENT, TRACESTATE)
# Kafka record headers as both clients take them: (name, bytes) pairs, in order.
Headers = tuple[tuple[str, bytes], ...]
# ...and as they give them (a header's value may be null).
RecordHeaders = Sequence[tuple[str, bytes | None]]
Attribute = str | bool | int | float  # a span attribute's value
NO_HEADERS: Headers = ()

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: Tracer | None = None  # None: tracing is off


class TracedRecord(Protocol):
    """What a span of a consumed record reads of it (services/common/kafka.py `Record`)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def headers(self) -> RecordHeaders | None: ...


def configure(settings: CommonSettings, service: str) -> None:
    """Exports the spans of this process to the OTLP/HTTP endpoint of the settings, as
    service `handoff-<service>`; without an endpoint, tracing stays off."""
    endpoint = settings.otel_exporter_otlp_endpoint
    if not endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": f"handoff-{service}"}))
    url = endpoint.rstrip("/") + "/v1/traces"  # the spec's path under the base endpoint
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    use(provider)


def use(provider: TracerProvider | None) -> None:
    """Makes spans with `provider` from now on (None: tracing off). The tests give theirs,
    with an in-memory exporter."""
    global _tracer
    _tracer = provider.get_tracer("handoff") if provider is not None else None


def enabled() -> bool:
    return _tracer is not None


def trace_headers(headers: RecordHeaders | None) -> Headers:
    """The trace context among a record's headers (none when it has none)."""
    if not headers:
        return NO_HEADERS
    return tuple((k, v) for k, v in headers if k in TRACE_HEADERS and isinstance(v, bytes))


def extract(headers: RecordHeaders | Mapping[str, str] | None) -> Context:
    """The context a record's headers (or a stored carrier) carry; an empty one without."""
    if not headers:
        return Context()
    carrier = headers if isinstance(headers, Mapping) else carrier_from(headers)
    return _PROPAGATOR.extract(carrier)


def carrier_from(headers: RecordHeaders | None) -> dict[str, str]:
    """The W3C fields among a record's headers, to store (`headers_of` is the way back)."""
    return {k: v.decode("ascii", "replace") for k, v in trace_headers(headers)}


def inject(span: Span | None) -> Headers:
    """Record headers carrying `span`'s context (none without a span: tracing off)."""
    return headers_of(carrier_of(span))


def carrier_of(span: Span | None) -> dict[str, str]:
    """`span`'s context as W3C fields (traceparent, tracestate), to store or to send."""
    carrier: dict[str, str] = {}
    if span is not None and span.get_span_context().is_valid:
        _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
    return carrier


def carrier_after(span: Span | None, parent: Mapping[str, str]) -> dict[str, str]:
    """What a record made in `span` carries: the span's context; with tracing off (no span),
    the parent's W3C fields as they came, as a consumer passes its record's headers on."""
    if span is None:
        return {k: v for k, v in parent.items() if k in TRACE_HEADERS}
    return carrier_of(span)


def headers_of(carrier: Mapping[str, str]) -> Headers:
    """Record headers of stored W3C fields (an outbox entry's)."""
    return tuple((k, v.encode("ascii")) for k, v in carrier.items() if k in TRACE_HEADERS)


def _messaging(operation: str, topic: str) -> dict[str, Attribute]:
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": topic,
    }


def processed(
    record: TracedRecord,
    started_ns: int,
    attributes: Mapping[str, Attribute] | None = None,
) -> Headers:
    """The headers for the records made out of `record`: a `process <topic>` span from
    `started_ns` (when its batch began) to now, child of the record's context, ended here.
    For the hot paths (router, reply gate): with tracing off, no span is made, and the
    record's own trace headers are passed on."""
    if _tracer is None:
        return trace_headers(record.headers)
    span = _tracer.start_span(
        f"process {record.topic}",
        context=extract(record.headers),
        kind=SpanKind.CONSUMER,
        attributes=_consumer_attributes(record, attributes),
        start_time=started_ns,
    )
    span.end()
    return inject(span)


@contextmanager
def processing(
    record: TracedRecord, attributes: Mapping[str, Attribute] | None = None
) -> Iterator[Headers]:
    """A `process <topic>` span around handling `record`, child of its context, the current
    span meanwhile (see `note`); yields the headers for the records made out of it."""
    if _tracer is None:
        yield trace_headers(record.headers)
        return
    with _tracer.start_as_current_span(
        f"process {record.topic}",
        context=extract(record.headers),
        kind=SpanKind.CONSUMER,
        attributes=_consumer_attributes(record, attributes),
    ) as span:
        yield inject(span)


def note(name: str, value: Attribute) -> None:
    """Adds an outcome (never text or personal data) to the current span, if one records."""
    trace.get_current_span().set_attribute(name, value)


@contextmanager
def sending(
    topic: str,
    parent: Context | None = None,
    attributes: Mapping[str, Attribute] | None = None,
) -> Iterator[Span | None]:
    """A `send <topic>` span (a producer's), child of `parent` (None: a new trace); yields
    it (None when tracing is off) for `inject` or `carrier_of`."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(
        f"send {topic}",
        context=parent if parent is not None else Context(),
        kind=SpanKind.PRODUCER,
        attributes={**_messaging("send", topic), **(attributes or {})},
    ) as span:
        yield span


def _consumer_attributes(
    record: TracedRecord, extra: Mapping[str, Attribute] | None
) -> dict[str, Attribute]:
    return {
        **_messaging("process", record.topic),
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": record.offset,
        **(extra or {}),
    }


def trace_id_of(headers: RecordHeaders | None) -> str | None:
    """The trace id (32 hex digits) a record's `traceparent` header names, if it has one."""
    context = trace.get_current_span(extract(headers)).get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


def now_ns() -> int:
    return time.time_ns()
