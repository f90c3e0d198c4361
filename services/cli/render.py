"""One readable line per record, for tail and trace (and JSON lines for scripts)."""

from __future__ import annotations

import base64
import json
from typing import Any

from rich.markup import escape

from services.cli.reading import Rec

TYPE_STYLE = {
    "user_message": "cyan",
    "routed_message": "blue",
    "handoff_ticket": "magenta",
    "handoff_command": "yellow",
    "mode_changed": "bold yellow",
    "ticket_changed": "yellow",
    "command_rejected": "red",
    "agent_reply": "green",
    "outbound_message": "bright_green",
    "dead_letter": "bold red",
}


def _q(text: Any, width: int = 60) -> str:
    text = str(text or "").replace("\n", " ")
    return f'"{text[:width]}…"' if len(text) > width else f'"{text}"'


def summary(rec: Rec) -> str:
    """What matters in a record, in a few words."""
    v = rec.value
    if v is None:
        return f"raw {rec.raw[:60]!r}"
    kind = v.get("type")
    if kind == "user_message":
        extra = f" +{len(v.get('attachments') or [])} attachment(s)" if v.get("attachments") else ""
        live = " [live test]" if v.get("live_test") else ""
        return f"{v.get('event_id')} {_q(v.get('text'))}{extra}{live}"
    if kind == "routed_message":
        r = v.get("routing", {})
        return (f"{v.get('message', {}).get('event_id')} → {r.get('mode')} "
                f"({cause_words(r.get('cause'))}, v{r.get('state_version')})")  # fmt: skip
    if kind == "handoff_ticket":
        turns = len(v.get("transcript", []))
        return f"ticket {v.get('ticket_id')} {_q(v.get('reason'))} {turns} turns"
    if kind == "handoff_command":
        return f"{v.get('command_id')} {v.get('action')} by {v.get('actor')} {_q(v.get('reason'))}"
    if kind == "mode_changed":
        expires = f" expires {v['expires_at']}" if v.get("expires_at") else ""
        return (f"{v.get('from_mode')}→{v.get('to_mode')} {cause_words(v.get('cause'))} "
                f"by {v.get('actor')} v{v.get('state_version')}{expires} "
                f"{_q(v.get('reason'), 40)}")  # fmt: skip
    if kind == "ticket_changed":
        owner = f" → {v['assignee']}" if v.get("assignee") else ""
        place = f" #{v['position']}" if v.get("position") else ""
        note = f" ({v['note']})" if v.get("note") else ""
        return (f"ticket {v.get('ticket_id')} {v.get('queue')}: {v.get('from_status') or 'new'}→"
                f"{v.get('status')}{owner}{place} by {v.get('actor')} "
                f"v{v.get('ticket_version')}{note}")  # fmt: skip
    if kind == "command_rejected":
        return f"{v.get('command_id')} rejected: {v.get('code')} ({v.get('detail')})"
    if kind == "agent_reply":
        return (f"{v.get('reply_id')} to {v.get('in_reply_to')} at v{v.get('state_version')} "
                f"{_q(v.get('text'))}")  # fmt: skip
    if kind == "outbound_message":
        return f"{v.get('event_id')} {v.get('sender')}: {_q(v.get('text'))}"
    if kind == "operator_action":
        return (f"{v.get('action')} by {v.get('actor')} on {v.get('target')}: "
                f"{v.get('outcome')} via {v.get('via')}")  # fmt: skip
    if kind == "dead_letter":
        e = v.get("error", {})
        return (f"{e.get('kind')} from {v.get('source_topic')}[{v.get('partition')}]@"
                f"{v.get('offset')}: {e.get('detail', '')[:80]}")  # fmt: skip
    return json.dumps(v)[:120]


def cause_words(cause: Any) -> str:
    return f"cause {cause}" if cause else "no cause yet"


def line(rec: Rec, note: str = "") -> str:
    """Rich markup for one record."""
    style = TYPE_STYLE.get(rec.type, "white")
    when = rec.at.strftime("%H:%M:%S.%f")[:-3]
    where = f"{rec.topic}[{rec.partition}]@{rec.offset}"
    kind = f"[{style}]{escape(rec.type):<16}[/]"
    text = f"[dim]{when}[/] {escape(where):<28} {kind} {escape(summary(rec))}"
    return text + (f"  [bold]{escape(note)}[/]" if note else "")


def as_json(rec: Rec, **extra: Any) -> str:
    doc: dict[str, Any] = {
        "topic": rec.topic,
        "partition": rec.partition,
        "offset": rec.offset,
        "timestamp": rec.at.isoformat(),
        "key": rec.key,
    }
    if rec.value is not None:
        doc["value"] = rec.value
    else:
        doc["raw_base64"] = base64.b64encode(rec.raw).decode()
    doc.update(extra)
    return json.dumps(doc)
