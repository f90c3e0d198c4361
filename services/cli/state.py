"""`handoffctl state rebuild`: the mode state back in Redis from handoff.events.

handoff.events keeps its records forever (retention.ms=-1, see services/common/topics.py),
and every ModeChanged carries the whole state after the change (mode, cause, actor, reason,
changed_at, expires_at, idle timeout, version). Rebuilding replays each interaction's
changes newer than what Redis holds: the latest through the same atomic, version-checked
function as live commands, the older ones into the history; a rebuild can run twice. A lease
that ran out while Redis was down comes back expired, and is reverted (with its timeout
ModeChanged) as if Redis had never left.

Leases moved on by later user messages are read from the routed messages on chat.human-queue
(their routing block carries expires_at). Not in the log, so not rebuilt: transcripts, dedupe
markers, and agent versions (keep Redis' AOF, and backups of it, for those).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress

from schemas import ModeChanged, RoutedMessage, interaction_key
from services.cli.reading import Rec, read_topics
from services.common.settings import CommonSettings
from services.handoff.domain import ModeState
from services.handoff.events import change_record
from services.handoff.store import ApplyRequest, ModeStore

app = typer.Typer(help="The mode state in Redis.", no_args_is_help=True)
console = Console(highlight=False)


def state_after(event: ModeChanged, minute_ms: int) -> tuple[ModeState, dict[str, Any]]:
    """The state a ModeChanged describes, and its change record for the history."""
    changed_ms = int(event.changed_at.timestamp() * 1000)
    state = ModeState(
        mode=event.to_mode,
        cause=event.cause,
        actor=event.actor,
        reason=event.reason,
        changed_at_ms=changed_ms,
        expires_at_ms=int(event.expires_at.timestamp() * 1000) if event.expires_at else None,
        idle_ms=event.idle_timeout_minutes * minute_ms if event.idle_timeout_minutes else None,
        human_since_ms=changed_ms if event.to_mode == "human" else None,
        version=event.state_version,
        command_id=event.command_id,
    )
    before = ModeState(mode=event.from_mode)
    return state, change_record(interaction_key(event), before, state, event.event_id)


@dataclass
class Log:
    """What the topics say about the state: the changes, and how far leases were moved on."""

    changes: dict[str, dict[int, ModeChanged]] = field(default_factory=lambda: defaultdict(dict))
    # (interaction, state version) -> the latest lease expiry a routed message carried
    extended: dict[tuple[str, int], int] = field(default_factory=dict)

    def add(self, rec: Rec) -> None:
        try:
            if rec.type == "mode_changed":
                event = ModeChanged.model_validate(rec.value)
                self.changes[interaction_key(event)][event.state_version] = event
            elif rec.type == "routed_message":
                routing = RoutedMessage.model_validate(rec.value)
                if routing.routing.expires_at is not None:
                    at = (interaction_key(routing.message), routing.routing.state_version)
                    ms = int(routing.routing.expires_at.timestamp() * 1000)
                    self.extended[at] = max(ms, self.extended.get(at, 0))
        except ValidationError:
            pass  # not ours to judge: the consumers dead-letter what is invalid


async def read_log(settings: CommonSettings, progress: Progress, until_ms: int | None) -> Log:
    log = Log()
    reading = progress.add_task("reading handoff.events and chat.human-queue", total=None)
    topics = [settings.topics.events, settings.topics.human_queue]
    async for rec in read_topics(settings.kafka_bootstrap, topics, until_ms=until_ms):
        progress.advance(reading)
        log.add(rec)
    return log


async def rebuild_state(
    settings: CommonSettings, store: ModeStore, progress: Progress, until_ms: int | None = None
) -> dict[str, int]:
    """Writes, per interaction, the changes Redis lacks: older ones to the history only, the
    latest through the atomic, version-checked write (as if a command made it). With
    `until_ms`, the state as it was then (what `replay` seeds its sandbox with)."""
    log = await read_log(settings, progress, until_ms)
    writing = progress.add_task("writing Redis", total=len(log.changes))
    history: dict[str, list[dict[str, Any]]] = {}
    requests = []
    for ikey, by_version in log.changes.items():
        current = (await store.read_state(ikey)).version
        newer = [by_version[n] for n in sorted(by_version) if n > current]
        if newer:
            history[ikey] = [state_after(e, settings.minute_ms)[1] for e in newer[:-1]]
            state, change = state_after(newer[-1], settings.minute_ms)
            moved = log.extended.get((ikey, state.version))
            if state.expires_at_ms is not None and moved is not None:
                # User messages moved the lease on after the change (R5).
                state = replace(state, expires_at_ms=max(state.expires_at_ms, moved))
            requests.append(ApplyRequest(
                ikey, f"rebuild:{newer[-1].event_id}", "rebuild", current, state, change,
                {"code": "accepted", "outputs": []},
            ))  # fmt: skip
        progress.advance(writing)
    await store.append_history(history)
    results = await store.apply_many(requests) if requests else []
    for ikey in log.changes:
        tenant, agent, channel, external = ikey.split(":", 3)
        await store.remember_user_agent(tenant, channel, external, agent)
    return {
        "interactions": len(log.changes),
        "restored": sum(r["status"] == "applied" for r in results),
        "changes": sum(len(h) for h in history.values()) + len(requests),
    }


@app.command("rebuild")
def rebuild() -> None:
    """Rebuild mode state and history from handoff.events (after Redis lost its data)."""
    settings = CommonSettings()

    async def run() -> dict[str, int]:
        store = ModeStore.from_settings(settings)
        await store.load_functions()
        try:
            with Progress(console=console, transient=True) as progress:
                return await rebuild_state(settings, store, progress)
        finally:
            await store.close()

    summary = asyncio.run(run())
    console.print(
        f"{summary['interactions']} interaction(s) in the log, {summary['restored']} restored "
        f"with {summary['changes']} change(s)"
    )
