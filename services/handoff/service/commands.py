"""Handling a HandoffCommand: decide (domain), write (store), and say what to emit (R2, R3, R7).

The same `CommandService.execute` serves the Kafka consumer of handoff.commands and
handoff.operator-commands and the operator HTTP API, so all emit the same events and
notices. Each entry point says what authority it vouches for (`Entry`, R22): the consumer by
the topic a record came on, the API by the verified token; never the record itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

import structlog
from prometheus_client import Counter

from schemas import (
    CommandRejected,
    HandoffCommand,
    HandoffTicket,
    ModeChanged,
    OperatorAction,
    OutboundMessage,
    TranscriptTurn,
    ids_of,
    interaction_key,
)
from services.common import metrics, tracing
from services.common.ids import derived_id
from services.common.kafka import Output
from services.common.settings import Topics
from services.handoff.domain.events import (
    change_record,
    latest_conversation,
    mode_changed,
    outbound_turn,
    ticket_changed,
)
from services.handoff.domain.modes import (
    Authority,
    Rejection,
    Transition,
    at_ms,
    notice_text,
    optional_at_ms,
    plan_transition,
    return_notice_of,
    ticket_id_of,
)
from services.handoff.domain.tickets import (
    QueueChoice,
    Refusal,
    Ticket,
    TicketStep,
    Waiting,
    new_ticket,
    pickup_due_ms,
    plan_action,
    plan_queue,
    ticket_id_for,
    waiting_line,
)
from services.handoff.service.waiting import waiting_for_new_ticket
from services.handoff.state.outbox import QueuedOutput
from services.handoff.state.store import ApplyRequest, CommandSnapshot, ModeStore

log = structlog.get_logger()

Role = Literal["events", "outbound", "human_queue"]
E = TypeVar("E", ModeChanged, CommandRejected)
MAX_CONFLICT_RETRIES = 20


@dataclass(frozen=True)
class CommandResult:
    """What a command produced: its outcome code and the records to emit, by topic role."""

    code: str  # "accepted" or a rejection code
    outputs: list[tuple[Role, str, str]]  # (role, key, JSON value)
    state_version: int | None = None
    # The counters to add once the outputs are written: none for a replay or a duplicate.
    counters: tuple[Counter, ...] = ()

    def to_outputs(
        self, topics: Topics, headers: tracing.Headers = tracing.NO_HEADERS
    ) -> list[Output]:
        return [
            Output(topics.for_role(r), key, value.encode(), headers)
            for r, key, value in self.outputs
        ]

    @property
    def changed(self) -> ModeChanged | None:
        """The ModeChanged of an accepted command (also on a replay, from the stored outputs)."""
        return self._event("mode_changed", ModeChanged)

    @property
    def rejected(self) -> CommandRejected | None:
        return self._event("command_rejected", CommandRejected)

    def _event(self, kind: str, model: type[E]) -> E | None:
        for role, _, value in self.outputs:
            event = json.loads(value) if role == "events" else {}
            if event.get("type") == kind:
                return model.model_validate(event)
        return None


@dataclass(frozen=True)
class Entry:
    """Where a command came in (R22): the authority that entry point vouches for, and the
    Kafka topic for a consumed record. A topic's commands that carry or claim operator
    authority get their audit record here, stored with the outcome so a replay repeats it
    byte for byte; the API writes its own (it knows the token: role, jti)."""

    authority: Authority
    topic: str | None = None

    def audits(self, command: HandoffCommand) -> bool:
        return self.topic is not None and "operator" in (self.authority, command.source)


API = Entry("operator")


@dataclass(frozen=True)
class Handoff:
    """What an accepted to_human opens besides the mode: the ticket, where it waits, and what
    the user is told about waiting (R14, R16, R17)."""

    choice: QueueChoice
    ticket: Ticket
    waiting: Waiting
    pickup_due_ms: int | None


@dataclass(frozen=True)
class Resolution:
    """A resolve with `return_to_ai` (R15): the ticket's step, written in the same step as the
    to_ai command that returns the interaction."""

    ticket_id: str
    actor: str
    note: str | None


class TicketRefusedError(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.detail)
        self.refusal = refusal


class CommandService:
    def __init__(
        self,
        store: ModeStore,
        minute_ms: int,
        ticket_turns: int,
        teammate_online_ms: int = 300_000,
        test_clock: bool = False,
    ) -> None:
        self._store = store
        self._minute_ms = minute_ms
        self._ticket_turns = ticket_turns
        self._online_ms = teammate_online_ms
        self._test_clock = test_clock

    async def execute(
        self,
        command: HandoffCommand,
        src: str,
        entry: Entry,
        audit: Callable[[str], QueuedOutput] | None = None,
        resolution: Resolution | None = None,
    ) -> CommandResult:
        """Decides and stores the command once; a replay of `src` returns the stored result.

        A command that did not come from a topic (`entry.topic` None: the operator API) has
        no Kafka transaction to carry its outputs: they are queued in the shard outbox in the
        same atomic step. `audit(code)` adds the audit record of the outcome to them. With a
        `resolution` (a to_ai), the ticket is resolved in the same step; raises
        TicketRefusedError when the ticket cannot be resolved."""
        ikey = interaction_key(command)
        if command.user.external_id is not None and not command.live_test:
            await self._store.remember_user_agent(
                command.tenant_id, command.user.channel, command.user.external_id, command.agent_id
            )
        for _ in range(MAX_CONFLICT_RETRIES):
            snap = await self._store.command_snapshot(
                ikey, command.tenant_id, command.agent_id, self._ticket_turns, self._test_clock
            )
            decision = plan_transition(
                command, snap.state, snap.published, snap.now_ms, self._minute_ms, entry.authority
            )
            handoff: Handoff | None = None
            if isinstance(decision, Transition) and decision.after.mode == "human":
                planned = await self._handoff(command, decision, snap)
                if isinstance(planned, Rejection):
                    decision = planned
                else:
                    handoff = planned
                    decision = replace(
                        decision,
                        after=replace(
                            decision.after,
                            ticket_id=planned.ticket.ticket_id,
                            queue=planned.ticket.queue,
                        ),
                    )
                    # The queue's index learns of the ticket before it exists: a crash after
                    # the step cannot leave it unlisted (reads drop entries of no ticket).
                    await self._store.index_ticket(
                        command.tenant_id, planned.ticket.queue, planned.ticket.ticket_id,
                        planned.ticket.created_at_ms,
                    )  # fmt: skip
            request = self._plan(command, decision, snap, src, entry, handoff)
            step: TicketStep | None = None
            if resolution is not None and isinstance(decision, Transition):
                step = await self._resolution(resolution, snap)
                request = self._with_resolution(request, step, resolution, snap)
            if audit is not None:
                request.result["outputs"].append(audit(request.result["code"]))
            stored = await self._store.apply(replace(request, to_outbox=entry.topic is None))
            if stored["status"] == "conflict":
                continue  # another change won the race: decide again on the new state
            if stored["status"] == "applied" and isinstance(decision, Transition):
                await self._after_apply(command, decision)
            if stored["status"] == "duplicate":
                duplicates = metrics.DUPLICATES.labels(topic="handoff.commands")
                return CommandResult("duplicate", [], counters=(duplicates,))
            outputs = [(role, key, value) for role, key, value in stored["outputs"]]
            code = stored["code"]
            counters: tuple[Counter, ...] = ()
            if stored["status"] == "applied":
                counters = (metrics.COMMANDS.labels(result=code),)
                if code == "accepted":
                    counters += (metrics.MODE_CHANGES.labels(cause=command.source),)
            result = CommandResult(code, outputs, stored.get("version"), counters)
            if stored["status"] == "applied":
                log.info(
                    "command_handled",
                    interaction=ikey,
                    command_id=command.command_id,
                    result=result.code,
                )
            return result
        raise RuntimeError(f"command {command.command_id}: state kept changing, gave up")

    async def _handoff(
        self, command: HandoffCommand, decision: Transition, snap: CommandSnapshot
    ) -> Handoff | Rejection:
        """R14 and R17: the queue of an accepted to_human, or why it cannot be handed off."""
        assert snap.published is not None  # check_command refused a to_human without one
        hours_now = snap.now_ms + snap.clock_offset_ms
        choice = plan_queue(command, snap.published, snap.queues, hours_now)
        if isinstance(choice, Rejection):
            return choice
        ticket = new_ticket(
            ticket_id_for(interaction_key(command), "ticket", command.command_id),
            interaction_key(command),
            command.tenant_id,
            choice.queue,
            snap.now_ms,
            command.reason,
            command.source,
        )
        position, eta = await waiting_for_new_ticket(
            self._store, ticket, snap.now_ms, self._minute_ms, self._online_ms
        )
        opens = choice.settings.opening_hours()
        opens_at = None
        if not opens.is_open(hours_now):
            next_ms = opens.next_opening_ms(hours_now)
            opens_at = opens.describe(next_ms) if next_ms is not None else "later"
        due = pickup_due_ms(choice.settings, snap.now_ms, hours_now, self._minute_ms)
        # The handoff notice tells the position: the waiting sweep notifies only a better one.
        ticket = replace(ticket, notified_position=position, notified_at_ms=snap.now_ms)
        return Handoff(choice, ticket, Waiting(position, eta, opens_at), due)

    async def _resolution(self, resolution: Resolution, snap: CommandSnapshot) -> TicketStep:
        ticket = await self._store.ticket(resolution.ticket_id)
        if ticket is None or ticket.ticket_id != snap.state.ticket_id:
            raise TicketRefusedError(Refusal(409, "ticket_closed", "The ticket has ended."))
        step = plan_action(ticket, "resolve", resolution.actor, snap.now_ms, note=resolution.note)
        if isinstance(step, Refusal):
            raise TicketRefusedError(step)
        return step

    def _with_resolution(
        self, request: ApplyRequest, step: TicketStep, resolution: Resolution, snap: CommandSnapshot
    ) -> ApplyRequest:
        event = ticket_changed(
            step.before, step.after, resolution.actor, step.note, snap.now_ms, None
        )
        value = event.model_dump_json()
        outputs = [*request.result["outputs"], ("events", request.ikey, value)]
        result = {**request.result, "outputs": outputs}
        return replace(
            request,
            result=result,
            resolution={
                "ticket_id": step.after.ticket_id,
                "expected_version": step.before.version,
                "fields": step.after.to_redis(),
                "change": value,
            },
        )

    async def _after_apply(self, command: HandoffCommand, decision: Transition) -> None:
        """Keeps the cross-slot queue index tidy once the interaction left human mode (reads
        would drop the entry anyway)."""
        before = decision.before
        if decision.after.mode == "ai" and before.ticket_id and before.queue:
            await self._store.unindex_ticket(command.tenant_id, before.queue, before.ticket_id)

    def _plan(
        self,
        command: HandoffCommand,
        decision: Transition | Rejection,
        snap: CommandSnapshot,
        src: str,
        entry: Entry,
        handoff: Handoff | None = None,
    ) -> ApplyRequest:
        """What to store for the decision: the new state, its change record, the outputs."""
        ikey = interaction_key(command)
        code = decision.code if isinstance(decision, Rejection) else "accepted"
        audit: list[tuple[Role, str, str]] = []
        if entry.audits(command):
            audit = [("events", ikey, self._audit(command, entry, code, snap).model_dump_json())]
        if isinstance(decision, Rejection):
            rejected = CommandRejected(
                **ids_of(command),
                event_id=derived_id("rejected", command.command_id),
                command_id=command.command_id,
                code=decision.code,
                detail=decision.detail,
                rejected_at=at_ms(snap.now_ms),
            )
            outputs: list[tuple[Role, str, str]] = [("events", ikey, rejected.model_dump_json())]
            if decision.notice:  # e.g. R17 out_of_hours: the AI keeps the user, who is told why
                away = self._system_message(command, snap, "away", decision.notice)
                outputs.append(("outbound", ikey, away.model_dump_json()))
            rejection = {"code": decision.code, "outputs": [*outputs, *audit]}
            return ApplyRequest(
                ikey, command.command_id, src, snap.state.version, None, None, rejection
            )
        change = change_record(ikey, decision.before, decision.after, decision.event_id)
        outputs = [("events", ikey, mode_changed(change, self._minute_ms).model_dump_json())]
        turn = ""
        ticket_json = ""
        if decision.after.mode == "human":
            text = notice_text(snap.published)
            if handoff is not None:
                template = snap.published.handoff.waiting_notice_text if snap.published else ""
                text = f"{text} {waiting_line(handoff.waiting, template)}"
            notice = self._system_message(command, snap, "notice", text)
            ticket = self._ticket(command, decision, snap, notice, handoff)
            outputs += [
                ("outbound", ikey, notice.model_dump_json()),
                ("human_queue", ikey, ticket.model_dump_json()),
            ]
            if handoff is not None:
                opened = ticket_changed(
                    None, handoff.ticket, command.actor, None, snap.now_ms, handoff.waiting.position
                ).model_dump_json()
                outputs.append(("events", ikey, opened))
                doc: dict[str, Any] = {"fields": handoff.ticket.to_new_redis(), "change": opened}
                if handoff.pickup_due_ms is not None:
                    doc["pickup_due"] = handoff.pickup_due_ms
                ticket_json = json.dumps(doc)
            turn = ticket.transcript[-1].model_dump_json()
        else:
            notice = self._return_notice(command, decision, snap)
            outputs.append(("outbound", ikey, notice.model_dump_json()))
            turn = outbound_turn(notice).model_dump_json()
        outputs += audit
        result: dict[str, Any] = {
            "code": "accepted",
            "outputs": outputs,
            "version": decision.after.version,
        }
        return ApplyRequest(
            ikey,
            command.command_id,
            src,
            snap.state.version,
            decision.after,
            change,
            result,
            turn,
            ticket_json=ticket_json,
        )

    def _audit(
        self, command: HandoffCommand, entry: Entry, outcome: str, snap: CommandSnapshot
    ) -> OperatorAction:
        """R22: who did it, as far as the topic vouches. A topic that grants agent authority
        only says that someone who may write it claimed to be `command.actor`."""
        trusted = entry.authority == "operator"
        return OperatorAction(
            event_id=derived_id("operator_action", command.command_id),
            tenant_id=command.tenant_id,
            actor=command.actor if trusted else f"kafka:{entry.topic}",
            action="mode_switch",
            target=interaction_key(command),
            outcome=outcome,
            command_id=command.command_id,
            via=entry.topic or "api",
            claimed_actor=None if trusted else command.actor,
            at=at_ms(snap.now_ms),
        )

    def _system_message(
        self, command: HandoffCommand, snap: CommandSnapshot, kind: str, text: str
    ) -> OutboundMessage:
        """A system message to the user, in their latest conversation (R3's notice, R17's
        away message)."""
        return OutboundMessage(
            **ids_of(command),
            event_id=derived_id(kind, command.command_id),
            conversation_id=latest_conversation(snap.transcript),
            sender="system",
            text=text,
            sent_at=at_ms(snap.now_ms),
        )

    def _return_notice(
        self, command: HandoffCommand, decision: Transition, snap: CommandSnapshot
    ) -> OutboundMessage:
        """R20: the one system message that tells the user the AI has them again, with the
        text captured when the human stretch began."""
        return OutboundMessage(
            **ids_of(command),
            event_id=derived_id("return_notice", command.command_id),
            conversation_id=latest_conversation(snap.transcript),
            sender="system",
            text=return_notice_of(decision.before),
            sent_at=at_ms(snap.now_ms),
        )

    def _ticket(
        self,
        command: HandoffCommand,
        decision: Transition,
        snap: CommandSnapshot,
        notice: OutboundMessage,
        handoff: Handoff | None,
    ) -> HandoffTicket:
        turns = [TranscriptTurn.model_validate(t) for t in snap.transcript]
        turns.append(outbound_turn(notice))  # as every message sent to the user is recorded
        return HandoffTicket(
            **ids_of(command),
            ticket_id=handoff.ticket.ticket_id if handoff else ticket_id_of(command.command_id),
            queue=handoff.ticket.queue if handoff else "default",
            status="queued",
            cause=command.source,
            actor=command.actor,
            reason=command.reason,
            created_at=at_ms(snap.now_ms),
            expires_at=optional_at_ms(decision.after.expires_at_ms),
            state_version=decision.after.version,
            command_id=command.command_id,
            transcript=turns,
        )
