"""The ticket actions of the operator API (R15): claim, assign, transfer, release, resolve.

Each action reads the ticket, decides with `tickets.plan_action`, and writes one
version-checked step (`ho_ticket_step`) whose TicketChanged, any notice to the user and the
OperatorAction audit record go to the shard outbox in that step; a lost race re-reads and
decides again, so among racing claims exactly one wins and the others get
`already_assigned`. A resolve that returns the interaction to the AI goes through the
operator to_ai command (CommandService), which resolves the ticket in the same step as the
mode change, so ModeChanged and TicketChanged come together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from schemas import HandoffCommand, OperatorAction, OutboundMessage, ids_of, parse_interaction_key
from services.common import metrics
from services.common.ids import derived_id
from services.handoff.domain.events import ticket_changed
from services.handoff.domain.modes import at_ms
from services.handoff.domain.tickets import (
    DEFAULT_QUEUE,
    Action,
    QueueSettings,
    Refusal,
    Ticket,
    TicketStep,
    pickup_due_ms,
    plan_action,
    queues_of,
    shard_of_ticket,
    teammate_text,
)
from services.handoff.service.commands import API, CommandService, Resolution, TicketRefusedError
from services.handoff.service.waiting import positions
from services.handoff.state.keys import outbox_key, shard_tag
from services.handoff.state.store import ModeStore
from services.handoff.state.ticket_store import Outputs

log = structlog.get_logger()
MAX_RETRIES = 30


@dataclass(frozen=True)
class Caller:
    """Who acts, from the token: never from the request body."""

    sub: str
    actor: str
    role: str
    token_id: str | None


@dataclass(frozen=True)
class ActionRequest:
    action: Action
    assignee: str | None = None
    display_name: str | None = None
    queue: str | None = None
    note: str | None = None
    return_to_ai: bool = True
    expected_version: int | None = None


@dataclass(frozen=True)
class ActionResult:
    ticket: Ticket
    position: int | None


class TicketActions:
    def __init__(
        self, store: ModeStore, commands: CommandService, minute_ms: int, online_ms: int
    ) -> None:
        self._store = store
        self._commands = commands
        self._minute_ms = minute_ms
        self._online_ms = online_ms

    async def ticket_of(self, tenant_id: str, ticket_id: str) -> Ticket | None:
        ticket = await self._store.ticket(ticket_id)
        return ticket if ticket is not None and ticket.tenant_id == tenant_id else None

    async def now_ms(self, ticket_id: str) -> int:
        shard = shard_of_ticket(ticket_id) or 0
        return await self._store.redis_now_ms(outbox_key(shard_tag(shard)))

    async def known_queues(self, tenant_id: str, agent_id: str) -> set[str]:
        """Where a ticket may be transferred: the tenant's configured queues, the queues the
        agent's published version lists, and `default`."""
        versions, published = await self._store.agent_versions(tenant_id, agent_id)
        live = next((v for v in versions if v.version == published), None)
        listed = queues_of(live.handoff.queues) if live else ()
        configured = {q.queue for q in await self._store.queues(tenant_id)}
        return configured | set(listed) | {DEFAULT_QUEUE}

    async def act(
        self, tenant_id: str, ticket_id: str, request: ActionRequest, caller: Caller
    ) -> ActionResult | Refusal:
        for _ in range(MAX_RETRIES):
            ticket = await self.ticket_of(tenant_id, ticket_id)
            if ticket is None:
                return Refusal(404, "ticket_not_found", f"No ticket {ticket_id}.")
            ids = parse_interaction_key(ticket.ikey)
            if request.action == "transfer":
                assert request.queue is not None
                if request.queue not in await self.known_queues(tenant_id, ids.agent_id):
                    return Refusal(
                        409, "unknown_queue", f"Queue {request.queue!r} is not a known queue."
                    )
            now = await self.now_ms(ticket_id)
            assignee = caller.sub if request.action == "claim" else request.assignee
            planned = plan_action(
                ticket,
                request.action,
                caller.actor,
                now,
                assignee=assignee,
                display_name=request.display_name,
                queue=request.queue,
                note=request.note,
                expected_version=request.expected_version,
            )
            if isinstance(planned, Refusal):
                self._count(request.action, planned.code)
                return planned
            if request.action == "resolve" and request.return_to_ai:
                return await self._resolve_to_ai(ticket, request, caller, now)
            result = await self._step(ticket, planned, request, caller, now)
            if result is not None:
                self._count(request.action, "ok")
                return result
        raise RuntimeError(f"ticket {ticket_id}: kept changing, gave up")

    def _count(self, action: str, result: str) -> None:
        metrics.TICKET_ACTIONS.labels(action=action, result=result).inc()

    async def _position(self, after: Ticket, now: int) -> int | None:
        """The place the ticket takes in its queue when it is queued again (oldest handoff
        first: a transfer or release keeps the user's place by their handoff time)."""
        if after.status != "queued":
            return None
        tickets = await self._store.queue_tickets(after.tenant_id, after.queue, now)
        ahead = [
            t
            for t in tickets
            if t.status == "queued"
            and t.ticket_id != after.ticket_id
            and (t.created_at_ms, t.ticket_id) < (after.created_at_ms, after.ticket_id)
        ]
        return len(ahead) + 1

    async def _step(
        self, ticket: Ticket, step: TicketStep, request: ActionRequest, caller: Caller, now: int
    ) -> ActionResult | None:
        after = step.after
        position = await self._position(after, now)
        change = ticket_changed(ticket, after, caller.actor, step.note, now, position)
        outputs: Outputs = [("events", ticket.ikey, change.model_dump_json())]
        if after.status == "assigned" and await self._announce(ticket):
            name = after.assignee_name or after.assignee or "A teammate"
            outputs.append(
                ("outbound", ticket.ikey, await self._message(after, teammate_text(name), now))
            )
        outputs.append(self._audit(caller, request, ticket, now, "accepted"))
        due = None
        if after.status == "queued":
            settings = await self._queue_settings(after)
            due = pickup_due_ms(settings, now, now, self._minute_ms)
        status = await self._store.ticket_step(
            ticket, after, change.model_dump_json(), outputs, due
        )
        if status == "conflict":
            return None
        if status == "missing":
            return None  # ended and expired meanwhile: the next read answers 404
        await self._after(ticket, step, caller, now)
        return ActionResult(after, position)

    async def _after(self, ticket: Ticket, step: TicketStep, caller: Caller, now: int) -> None:
        """The cross-slot bookkeeping of a written step (statistics and tidy indexes)."""
        after = step.after
        await self._store.teammate_seen(after.tenant_id, caller.sub, now)
        if step.picked_up:
            wait = max(0, now - ticket.queued_at_ms)
            await self._store.record_pickup(after.tenant_id, ticket.queue, after, wait, now)
        if after.queue != ticket.queue:
            # Right after the step; a crash in between is repaired by the waiting sweep,
            # which re-adds every open ticket to its queue's index.
            await self._store.index_ticket(
                after.tenant_id, after.queue, after.ticket_id, after.created_at_ms
            )
        if after.queue != ticket.queue or not after.open:
            await self._store.unindex_ticket(ticket.tenant_id, ticket.queue, ticket.ticket_id)

    async def _resolve_to_ai(
        self, ticket: Ticket, request: ActionRequest, caller: Caller, now: int
    ) -> ActionResult | Refusal:
        ids = parse_interaction_key(ticket.ikey)
        command_id = derived_id("resolve", ticket.ticket_id, ticket.version)
        command = HandoffCommand(
            **ids_of(ids),
            command_id=command_id,
            action="to_ai",
            source="operator",
            actor=caller.actor,
            reason=_reason(request.note),
            requested_at=datetime.now(UTC),
        )
        try:
            result = await self._commands.execute(
                command,
                f"api/{command_id}",
                API,
                audit=lambda code: self._audit(caller, request, ticket, now, code),
                resolution=Resolution(ticket.ticket_id, caller.actor, request.note),
            )
        except TicketRefusedError as exc:
            self._count("resolve", exc.refusal.code)
            return exc.refusal
        if result.code == "already_in_mode":  # back on AI meanwhile (idle timeout): closed
            self._count("resolve", "ticket_closed")
            return Refusal(409, "ticket_closed", "The user is back with the AI; the ticket closed.")
        if result.code != "accepted":
            self._count("resolve", result.code)
            return Refusal(409, result.code, "The interaction could not return to the AI.")
        resolved = await self._store.ticket(ticket.ticket_id)
        await self._store.teammate_seen(ticket.tenant_id, caller.sub, now)
        await self._store.unindex_ticket(ticket.tenant_id, ticket.queue, ticket.ticket_id)
        self._count("resolve", "ok")
        return ActionResult(resolved or ticket, None)

    async def _announce(self, ticket: Ticket) -> bool:
        ids = parse_interaction_key(ticket.ikey)
        versions, published = await self._store.agent_versions(ids.tenant_id, ids.agent_id)
        live = next((v for v in versions if v.version == published), None)
        return bool(live and live.handoff.announce_teammate)

    async def _queue_settings(self, ticket: Ticket) -> QueueSettings:
        record = await self._store.queue(ticket.tenant_id, ticket.queue)
        return record.settings if record else QueueSettings()

    async def _message(self, ticket: Ticket, text: str, now: int) -> str:
        turns = await self._store.transcript(ticket.ikey, 20)
        conversation = next(
            (c for c in (t.get("conversation_id") for t in reversed(turns)) if c), None
        )
        return OutboundMessage(
            **ids_of(parse_interaction_key(ticket.ikey)),
            event_id=derived_id("teammate", ticket.ticket_id, ticket.version + 1),
            conversation_id=conversation,
            sender="system",
            text=text,
            sent_at=at_ms(now),
        ).model_dump_json()

    def _audit(
        self, caller: Caller, request: ActionRequest, ticket: Ticket, now: int, outcome: str
    ) -> tuple[str, str, str]:
        """The OperatorAction of the action, queued with it (never message text)."""
        record: dict[str, Any] = {
            "event_id": derived_id("audit", ticket.ticket_id, ticket.version + 1),
            "tenant_id": ticket.tenant_id,
            "actor": caller.actor,
            "role": caller.role,
            "token_id": caller.token_id,
            "action": f"ticket_{request.action}",
            "target": ticket.ticket_id,
            "outcome": outcome,
            "at": at_ms(now),
        }
        return ("events", ticket.ikey, OperatorAction.model_validate(record).model_dump_json())

    async def queue_position(self, ticket: Ticket, now: int) -> int | None:
        if ticket.status != "queued":
            return None
        tickets = await self._store.queue_tickets(ticket.tenant_id, ticket.queue, now)
        return positions(tickets).get(ticket.ticket_id)


def _reason(note: str | None) -> str:
    """The to_ai's reason (history, ModeChanged): one line; the full note is on the ticket."""
    if not note or not note.strip():
        return "Resolved by a teammate."
    line = " ".join(note.split())
    text = f"Resolved: {line}"
    return text if len(text) <= 280 else text[:279] + "\u2026"
