"""`handoffctl trace EVENT_ID` (services/cli/trace.py): which records belong to one message.

Found from outside: for a message that caused a handoff, only the message and its routing
were shown; the agent's command, the ModeChanged, the ticket and the notice came after the
routing and fell outside the window the trace looked in."""

from __future__ import annotations

import itertools
import json
from typing import Any

from services.cli.reading import Rec
from services.cli.trace import related_to_event

KEY = "acme:support:web:walk3"
IDS: dict[str, Any] = {
    "tenant_id": "acme", "agent_id": "support", "user": {"channel": "web", "external_id": "walk3"},
}  # fmt: skip
TRACE = "00-aaaabbbbccccddddeeeeffff00001111-1111222233334444-01"
_offsets = itertools.count()


def rec(topic: str, at_ms: int, value: dict[str, Any], traced: bool = True) -> Rec:
    headers = (("traceparent", TRACE.encode()),) if traced else ()
    raw = json.dumps(value).encode()
    return Rec(topic, 0, next(_offsets), at_ms, KEY, raw, value, headers)


def a_handoff(traced: bool) -> list[Rec]:
    t = 1_000_000
    message = {"type": "user_message", "event_id": "m1", **IDS, "text": "a person please"}
    return [
        rec("chat.inbound", t, message, traced),
        rec("chat.ai-requests", t + 5, {"type": "routed_message", "message": message}, traced),
        rec(
            "handoff.commands",
            t + 900,
            {"type": "handoff_command", **IDS, "command_id": "c1"},
            traced,
        ),
        rec("handoff.events", t + 950, {"type": "mode_changed", **IDS, "event_id": "e1"}, traced),
        rec("handoff.events", t + 951, {"type": "ticket_changed", **IDS, "event_id": "e2"}, traced),
        rec(
            "chat.human-queue", t + 952, {"type": "handoff_ticket", **IDS, "event_id": "e3"}, traced
        ),
        rec(
            "chat.outbound",
            t + 953,
            {"type": "outbound_message", **IDS, "event_id": "n1", "sender": "system"},
            traced,
        ),
        # A later message of the same user, minutes after: not this message's.
        rec("chat.inbound", t + 600_000, {"type": "user_message", "event_id": "m2", **IDS}, False),
    ]


def test_a_traced_message_brings_every_record_of_its_trace() -> None:
    records = a_handoff(traced=True)
    types = [r.type for r in related_to_event(records, "m1")]
    assert types == [
        "user_message", "routed_message", "handoff_command", "mode_changed", "ticket_changed",
        "handoff_ticket", "outbound_message",
    ]  # fmt: skip


def test_without_trace_headers_what_follows_the_routing_shortly_is_shown_too() -> None:
    records = a_handoff(traced=False)
    types = [r.type for r in related_to_event(records, "m1")]
    assert "handoff_command" in types and "mode_changed" in types and "handoff_ticket" in types
    assert "m2" not in {(r.value or {}).get("event_id") for r in related_to_event(records, "m1")}
