"""`handoffctl state rebuild`: the state back in Redis from the log.

handoff.events keeps its records forever (retention.ms=-1, see services/common/topics.py),
and every ModeChanged carries the whole state after the change (mode, cause, actor, reason,
changed_at, expires_at, idle timeout, version). Rebuilding replays each interaction's
changes newer than what Redis holds: the latest through the same atomic, version-checked
function as live commands, the older ones into the history; a rebuild can run twice. A lease
that ran out while Redis was down comes back expired, and is reverted (with its timeout
ModeChanged) as if Redis had never left.

Leases moved on by later user messages are read from the routed messages on chat.human-queue
(their routing block carries expires_at). Agent versions come back from their
AgentVersionApplied / AgentVersionPublished events on handoff.events. Transcripts come back
from what was said: the user messages on chat.inbound and every message sent to an
identified live user on chat.outbound (notices, forwarded agent replies, teammates' replies),
in time order, as far back as those topics' retention reaches. Not rebuilt: dedupe markers.
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

from schemas import (
    AgentVersionApplied,
    AgentVersionPublished,
    HandoffTicket,
    ModeChanged,
    OutboundMessage,
    RoutedMessage,
    TicketChanged,
    TranscriptTurn,
    UserMessage,
    interaction_key,
    parse_interaction_key,
)
from services.cli.reading import Rec, read_topics
from services.common.settings import CommonSettings, Topics
from services.handoff.domain.events import change_record, outbound_turn
from services.handoff.domain.modes import (
    AgentVersion,
    HandoffConfig,
    ModeState,
    return_notice_text,
    ticket_id_of,
)
from services.handoff.domain.tickets import Ticket, pickup_due_ms
from services.handoff.state.store import ApplyRequest, ModeStore
from services.router.domain import is_stateless, user_turn

app = typer.Typer(help="The mode state in Redis.", no_args_is_help=True)
console = Console(highlight=False)


def state_after(
    event: ModeChanged, minute_ms: int, return_notice: str = ""
) -> tuple[ModeState, dict[str, Any]]:
    """The state a ModeChanged describes, and its change record for the history.
    `return_notice`: the text captured when human mode began (R20; from the version
    published then)."""
    changed_ms = int(event.changed_at.timestamp() * 1000)
    human = event.to_mode == "human"
    state = ModeState(
        mode=event.to_mode,
        cause=event.cause,
        actor=event.actor,
        reason=event.reason,
        changed_at_ms=changed_ms,
        expires_at_ms=int(event.expires_at.timestamp() * 1000) if event.expires_at else None,
        idle_ms=event.idle_timeout_minutes * minute_ms if event.idle_timeout_minutes else None,
        human_since_ms=changed_ms if human else None,
        version=event.state_version,
        command_id=event.command_id,
        return_notice=return_notice if human else "",
        ticket_id=ticket_id_of(event.command_id) if human and event.command_id else None,
    )
    before = ModeState(mode=event.from_mode)
    return state, change_record(interaction_key(event), before, state, event.event_id)


def ticket_from_changes(changes: list[TicketChanged], opened: HandoffTicket | None) -> Ticket:
    """A ticket as its TicketChanged events (oldest first) leave it. What the events do not
    carry: the assignee's display name (their `sub` instead) and the last better-place
    notice (its handoff notice instead)."""

    def ms(change: TicketChanged) -> int:
        return int(change.changed_at.timestamp() * 1000)

    first, last = changes[0], changes[-1]
    # Every change to `queued` (re)queues it, except the pickup announcement (R18).
    queued = [c for c in changes if c.status == "queued" and c.note != "pickup_overdue"]
    since_queued = changes[changes.index(queued[-1]) :] if queued else changes
    assigned = [c for c in changes if c.status == "assigned"]
    return Ticket(
        ticket_id=first.ticket_id,
        ikey=interaction_key(first),
        tenant_id=first.tenant_id,
        queue=last.queue,
        status=last.status,
        version=last.ticket_version,
        created_at_ms=ms(first),
        queued_at_ms=ms(queued[-1]) if queued else ms(first),
        reason=opened.reason if opened else "",
        cause=opened.cause if opened else "",
        assignee=last.assignee,
        assignee_name=last.assignee,
        assigned_at_ms=ms(assigned[-1]) if last.status == "assigned" and assigned else None,
        ended_at_ms=ms(last) if last.status in ("resolved", "closed") else None,
        resolution_note=next((c.note for c in reversed(changes) if c.status == "resolved"), None),
        pickup_overdue=any(c.note == "pickup_overdue" for c in since_queued),
        notified_position=first.position,
        notified_at_ms=ms(first),
    )


async def restore_tickets(store: ModeStore, log: Log, minute_ms: int) -> int:
    """The tickets Redis lacks, from their TicketChanged events (R15); returns how many. An
    open queued ticket gets its pickup deadline back from the queue's settings now."""
    written = 0
    for ticket_id, seen in log.ticket_changes.items():
        changes = sorted(
            {c.ticket_version: c for c in seen}.values(), key=lambda c: c.ticket_version
        )
        ticket = ticket_from_changes(changes, log.opened(ticket_id))
        due = None
        if ticket.status == "queued" and not ticket.pickup_overdue:
            record = await store.queue(ticket.tenant_id, ticket.queue)
            if record is not None:
                queued = ticket.queued_at_ms
                due = pickup_due_ms(record.settings, queued, queued, minute_ms)
        history = [c.model_dump_json() for c in changes]
        written += await store.restore_ticket(ticket, history, due)
    return written


AgentId = tuple[str, str]  # (tenant, agent)


def latest_ms(event: ModeChanged) -> int:
    return int(event.changed_at.timestamp() * 1000)


@dataclass
class Transcripts:
    """What was said, per interaction: (record time, turn), first copy of each event id."""

    turns: dict[str, dict[str, tuple[int, TranscriptTurn]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    stateless: set[str] = field(default_factory=set)  # Live Test / anonymous message ids
    replies_to: dict[tuple[str, str], str] = field(default_factory=dict)  # -> in_reply_to
    # interaction -> record time (ms) of the latest teammate reply (R19: it moved the lease)
    replied: dict[str, int] = field(default_factory=dict)

    def add_inbound(self, rec: Rec) -> None:
        message = UserMessage.model_validate(rec.value)
        if is_stateless(message):
            self.stateless.add(message.event_id)
        else:
            self.turns[interaction_key(message)].setdefault(
                message.event_id, (rec.timestamp_ms, user_turn(message))
            )

    def add_outbound(self, rec: Rec) -> None:
        message = OutboundMessage.model_validate(rec.value)
        if message.user.external_id is None:
            return
        ikey = interaction_key(message)
        # A notice is recorded at the step that decided it (its sent_at, Redis time), which
        # can be well before the relay published it: a user message may sit in between.
        at = int(message.sent_at.timestamp() * 1000) if message.sender == "system" else None
        turn = (min(at or rec.timestamp_ms, rec.timestamp_ms), outbound_turn(message))
        self.turns[ikey].setdefault(message.event_id, turn)
        if message.in_reply_to is not None:
            self.replies_to[(ikey, message.event_id)] = message.in_reply_to
        if message.sender == "human":
            self.replied[ikey] = max(rec.timestamp_ms, self.replied.get(ikey, 0))

    def of(self, ikey: str) -> list[tuple[int, str]]:
        """The interaction's turns in time order, without replies to stateless messages
        (the reply gate records none of those)."""
        kept = [
            (at, turn)
            for event_id, (at, turn) in self.turns[ikey].items()
            if self.replies_to.get((ikey, event_id)) not in self.stateless
        ]
        # In the order the turns say they happened: a notice queued in the outbox reaches
        # chat.outbound a relay tick after it was recorded, later messages in between.
        ordered = sorted(kept, key=lambda t: (t[1].at, t[0]))
        return [(at, turn.model_dump_json()) for at, turn in ordered]


@dataclass
class Log:
    """What the topics say about the state: the changes, how far leases were moved on, the
    agent versions and what was said."""

    changes: dict[str, dict[int, ModeChanged]] = field(default_factory=lambda: defaultdict(dict))
    # (interaction, state version) -> the latest lease expiry a routed message carried
    extended: dict[tuple[str, int], int] = field(default_factory=dict)
    versions: dict[AgentId, list[AgentVersionApplied]] = field(
        default_factory=lambda: defaultdict(list)
    )
    published: dict[AgentId, AgentVersionPublished] = field(default_factory=dict)
    publishes: dict[AgentId, list[AgentVersionPublished]] = field(
        default_factory=lambda: defaultdict(list)
    )
    said: Transcripts = field(default_factory=Transcripts)
    # R14: interaction -> state version -> the ticket its handoff opened; ticket -> its changes
    tickets: dict[str, dict[int, HandoffTicket]] = field(default_factory=lambda: defaultdict(dict))
    ticket_changes: dict[str, list[TicketChanged]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def opened(self, ticket_id: str) -> HandoffTicket | None:
        return next(
            (t for by in self.tickets.values() for t in by.values() if t.ticket_id == ticket_id),
            None,
        )

    def ticket_of(self, ikey: str, version: int) -> tuple[str | None, str | None]:
        """(ticket id, queue) the state at `version` names: its latest handoff's ticket, in
        the queue the ticket's latest change put it."""
        opened = [t for v, t in self.tickets.get(ikey, {}).items() if v <= version]
        if not opened:
            return None, None
        ticket = max(opened, key=lambda t: t.state_version)
        changes = self.ticket_changes.get(ticket.ticket_id)
        return ticket.ticket_id, changes[-1].queue if changes else ticket.queue

    def return_notice_at(self, ikey: str, at_ms: int) -> str:
        """The return notice of the version published at `at_ms` (R20: captured then)."""
        ids = parse_interaction_key(ikey)
        agent = (ids.tenant_id, ids.agent_id)
        live = [p for p in self.publishes[agent] if p.published_at.timestamp() * 1000 <= at_ms]
        n = live[-1].version if live else None
        applied = next((v for v in self.versions[agent] if v.version == n), None)
        if applied is None:
            return return_notice_text(None)
        config = HandoffConfig(**applied.handoff)
        return return_notice_text(AgentVersion(applied.version, config))

    def add(self, rec: Rec, topics: Topics) -> None:
        try:
            if rec.topic == topics.inbound:
                self.said.add_inbound(rec)
            elif rec.topic == topics.outbound:
                self.said.add_outbound(rec)
            elif rec.type == "mode_changed":
                event = ModeChanged.model_validate(rec.value)
                self.changes[interaction_key(event)][event.state_version] = event
            elif rec.type == "agent_version_applied":
                applied = AgentVersionApplied.model_validate(rec.value)
                self.versions[(applied.tenant_id, applied.agent_id)].append(applied)
            elif rec.type == "agent_version_published":
                live = AgentVersionPublished.model_validate(rec.value)
                self.published[(live.tenant_id, live.agent_id)] = live  # one key: in order
                self.publishes[(live.tenant_id, live.agent_id)].append(live)
            elif rec.type == "handoff_ticket":
                ticket = HandoffTicket.model_validate(rec.value)
                self.tickets[interaction_key(ticket)][ticket.state_version] = ticket
            elif rec.type == "ticket_changed":
                changed = TicketChanged.model_validate(rec.value)
                self.ticket_changes[changed.ticket_id].append(changed)
            elif rec.type == "routed_message":
                routing = RoutedMessage.model_validate(rec.value)
                if routing.routing.expires_at is not None:
                    at = (interaction_key(routing.message), routing.routing.state_version)
                    ms = int(routing.routing.expires_at.timestamp() * 1000)
                    self.extended[at] = max(ms, self.extended.get(at, 0))
        except ValidationError:
            pass  # not ours to judge: the consumers dead-letter what is invalid


async def read_log(
    settings: CommonSettings, progress: Progress, until_ms: int | None, said: bool = True
) -> Log:
    """The log up to `until_ms`; `said`: with chat.inbound and chat.outbound (transcripts)."""
    log = Log()
    t = settings.topics
    topics = [t.events, t.human_queue] + ([t.inbound, t.outbound] if said else [])
    reading = progress.add_task(f"reading {', '.join(topics)}", total=None)
    async for rec in read_topics(settings, topics, until_ms=until_ms):
        progress.advance(reading)
        log.add(rec, t)
    return log


async def restore_agents(store: ModeStore, log: Log) -> int:
    """The agent versions Redis lacks, and their published version; returns how many."""
    written = 0
    for (tenant, agent), applied in log.versions.items():
        published = log.published.get((tenant, agent))
        n = published.version if published else None
        written += await store.restore_agent_versions(tenant, agent, applied, n)
    return written


async def rebuild_state(
    settings: CommonSettings, store: ModeStore, progress: Progress, until_ms: int | None = None
) -> dict[str, int]:
    """Writes, per interaction, the changes Redis lacks: older ones to the history only, the
    latest through the atomic, version-checked write (as if a command made it). With
    `until_ms`, the state as it was then (what `replay` seeds its sandbox with)."""
    log = await read_log(settings, progress, until_ms, said=until_ms is None)
    versions = await restore_agents(store, log)
    writing = progress.add_task("writing Redis", total=len(log.changes))
    history: dict[str, list[dict[str, Any]]] = {}
    requests = []
    for ikey, by_version in log.changes.items():
        current = (await store.read_state(ikey)).version
        newer = [by_version[n] for n in sorted(by_version) if n > current]
        if newer:
            history[ikey] = [state_after(e, settings.minute_ms)[1] for e in newer[:-1]]
            latest = newer[-1]
            notice = log.return_notice_at(ikey, latest_ms(latest))
            state, change = state_after(latest, settings.minute_ms, notice)
            if state.mode == "human":  # R14: the ticket it waits with, in its queue now
                ticket_id, queue = log.ticket_of(ikey, state.version)
                state = replace(state, ticket_id=ticket_id or state.ticket_id, queue=queue)
            moved = log.extended.get((ikey, state.version))
            if state.expires_at_ms is not None and moved is not None:
                # User messages moved the lease on after the change (R5).
                state = replace(state, expires_at_ms=max(state.expires_at_ms, moved))
            replied = log.said.replied.get(ikey)
            if state.idle_ms and state.expires_at_ms and replied and replied >= latest_ms(latest):
                # A teammate's reply moved it too (R19): from the reply's record time, which
                # is at most the relay's delay after the step that moved it.
                state = replace(
                    state, expires_at_ms=max(state.expires_at_ms, replied + state.idle_ms)
                )
            requests.append(ApplyRequest(
                ikey, f"rebuild:{newer[-1].event_id}", "rebuild", current, state, change,
                {"code": "accepted", "outputs": []},
            ))  # fmt: skip
        progress.advance(writing)
    await store.append_history(history)
    results = await store.apply_many(requests) if requests else []
    tickets = await restore_tickets(store, log, settings.minute_ms)
    transcripts = 0
    for ikey in log.said.turns:
        transcripts += await store.restore_transcript(ikey, log.said.of(ikey))
    for ikey in log.changes.keys() | log.said.turns.keys():
        ids = parse_interaction_key(ikey)
        agent, user = ids.agent_id, ids.user
        await store.remember_user_agent(ids.tenant_id, user.channel, user.external_id or "", agent)
    return {
        "interactions": len(log.changes),
        "restored": sum(r["status"] == "applied" for r in results),
        "changes": sum(len(h) for h in history.values()) + len(requests),
        "versions": versions,
        "transcripts": transcripts,
        "tickets": tickets,
    }


@app.command("rebuild")
def rebuild() -> None:
    """Rebuild mode state, history, agent versions, transcripts and tickets from the log
    (after Redis lost its data)."""
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
        f"with {summary['changes']} change(s); {summary['versions']} agent version(s) and "
        f"{summary['transcripts']} transcript(s) restored; {summary['tickets']} ticket(s) "
        "restored"
    )
