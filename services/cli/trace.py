"""`handoffctl trace`: the life of a message, or of an interaction, across every topic.

Answers "why did this user get this reply?" on one screen: the inbound message, the routing
decision (mode, cause, state version), the agent's reply and the reply gate's verdict
(forwarded, or suppressed and why: the gate's stored decision, read from Redis), what went
out, and the mode changes in between, in time order. It names the OpenTelemetry trace id the
records carry in their `traceparent` header, to look the same message up in a tracing backend.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from schemas import InteractionIds, interaction_key
from services.cli.reading import Rec, read_topics, since_option
from services.cli.render import as_json, cause_words, line
from services.common import tracing
from services.common.settings import CommonSettings
from services.handoff.state.reader import StateClient


def key_of(rec: Rec) -> str | None:
    """The interaction key of a record: from its value's ids, else its Kafka key."""
    v = rec.value or {}
    try:
        return interaction_key(InteractionIds.model_validate(v.get("message", v)))
    except ValidationError:
        return rec.key


@dataclass
class Step:
    rec: Rec
    note: str = ""


# What a message can cause besides its routing and replies: a handoff's records.
CAUSED = (
    "handoff_command", "mode_changed", "command_rejected", "handoff_ticket", "ticket_changed",
)  # fmt: skip
WINDOW_MS = 60_000


def related_to_event(records: list[Rec], event_id: str) -> list[Rec]:
    """The records of one user message: itself, its routing, replies, outbound, dead letters."""
    mine: list[Rec] = []
    replies: set[str] = set()
    for rec in records:
        v = rec.value or {}
        if (
            v.get("event_id") == event_id
            or v.get("message", {}).get("event_id") == event_id
            or v.get("in_reply_to") == event_id
            or (
                v.get("type") == "dead_letter"
                and event_id.encode() in base64.b64decode(v.get("raw", ""))
            )
        ):
            mine.append(rec)
            if v.get("type") == "agent_reply":
                replies.add(str(v.get("reply_id")))
    mine += [r for r in records if (r.value or {}).get("event_id") in replies and r not in mine]
    # Everything the message caused carries its trace context (a channel that sets one).
    traces = set(trace_ids(mine))
    mine += [r for r in records if traces and tracing.trace_id_of(r.headers) in traces]
    keys = {key_of(r) for r in mine}
    if mine:  # else: the interaction's changes around the message, a minute either side
        start, end = min(r.timestamp_ms for r in mine), max(r.timestamp_ms for r in mine)
        mine += [
            r for r in records
            if r.type in CAUSED and key_of(r) in keys
            and start - WINDOW_MS <= r.timestamp_ms <= end + WINDOW_MS
        ]  # fmt: skip
    unique = {(r.topic, r.partition, r.offset): r for r in mine}
    return sorted(unique.values(), key=lambda r: (r.timestamp_ms, r.topic, r.offset))


def trace_ids(records: list[Rec]) -> list[str]:
    """The trace ids the records' headers carry, each once, in the records' order."""
    found = (tracing.trace_id_of(r.headers) for r in records)
    return list(dict.fromkeys(t for t in found if t is not None))


async def annotate(steps: list[Rec], records: list[Rec], state: StateClient | None) -> list[Step]:
    out_ids = {(r.value or {}).get("event_id") for r in records if r.type == "outbound_message"}
    annotated = []
    for rec in steps:
        v = rec.value or {}
        note = ""
        if rec.type == "routed_message":
            r = v["routing"]
            where = "HUMAN QUEUE" if r["mode"] == "human" else "AI"
            why = f"mode {r['mode']}, {cause_words(r['cause'])}, state v{r['state_version']}"
            note = f"routed to {where} ({why})"
        elif rec.type == "agent_reply":
            note = await gate_note(rec, v, v.get("reply_id") in out_ids, state)
        annotated.append(Step(rec, note))
    return annotated


async def gate_note(rec: Rec, v: dict[str, Any], forwarded: bool, state: StateClient | None) -> str:
    if forwarded:
        return "reply gate: FORWARDED"
    stored = await state.reply_verdict(key_of(rec) or "", str(v["reply_id"])) if state else None
    if stored is None:
        return "reply gate: not forwarded (no stored verdict: not gated yet, or expired)"
    why = {
        "suppressed_human_mode": "the interaction was in human mode",
        "suppressed_stale_version": "the mode changed since the message was routed",
    }.get(stored.get("verdict", ""), stored.get("verdict", ""))
    now = stored.get("current_version")
    return (
        f"reply gate: SUPPRESSED — {why} (reply made at v{v.get('state_version')}, state at v{now})"
    )


def trace(
    event_id: Annotated[str | None, typer.Argument(help="a user message's event_id")] = None,
    key: Annotated[str | None, typer.Option(help="an interaction key instead")] = None,
    since: Annotated[str, typer.Option(help="how far back to look: 15m, 2h, 1d or ISO")] = "1d",
    json_out: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
) -> None:
    """Everything that happened to a message (EVENT_ID) or an interaction (--key), in order."""
    if (event_id is None) == (key is None):
        raise typer.BadParameter("give an EVENT_ID or --key, not both")
    settings = CommonSettings()
    console = Console(highlight=False)
    since_ms = since_option(since)

    async def run() -> list[Step]:
        topics = settings.topics.all()
        topics.remove(settings.topics.timeout_shards)
        records = [r async for r in read_topics(settings, topics, since_ms)]
        if event_id is not None:
            steps = related_to_event(records, event_id)
        else:
            steps = sorted((r for r in records if key_of(r) == key), key=lambda r: r.timestamp_ms)
        state = StateClient.from_settings(settings)
        try:
            return await annotate(steps, records, state)
        finally:
            await state.close()

    with console.status("reading every topic…"):  # shown on a terminal only
        steps = asyncio.run(run())
    if not json_out:
        for trace_id in trace_ids([step.rec for step in steps]):
            console.print(f"trace id {trace_id}")
    for step in steps:
        if json_out:
            print(as_json(step.rec, note=step.note, trace_id=tracing.trace_id_of(step.rec.headers)))
        else:
            console.print(line(step.rec, step.note))
    if not steps:
        console.print(f"[yellow]nothing found for {event_id or key} since {since}[/]")
        raise typer.Exit(1)
