"""Handling a HandoffCommand: decide (domain), write (store), and say what to emit (R2, R3, R7).

The same `CommandService.execute` serves the Kafka consumer of handoff.commands and
handoff.operator-commands and the operator HTTP API, so all emit the same events and
notices. Each entry point says what authority it vouches for (`Entry`, R22): the consumer by
the topic a record came on, the API by the verified token; never the record itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import structlog
from prometheus_client import Counter

from schemas import (
    CommandRejected,
    HandoffCommand,
    HandoffTicket,
    OperatorAction,
    OutboundMessage,
    TranscriptTurn,
    ids_of,
    interaction_key,
)
from services.common import metrics
from services.common.kafka import Handled, Output, Record, decode
from services.common.settings import Topics
from services.handoff.domain import (
    Authority,
    Rejection,
    Transition,
    at_ms,
    derived_id,
    notice_text,
    optional_at_ms,
    plan_transition,
    return_notice_of,
    ticket_id_of,
)
from services.handoff.events import change_record, mode_changed, outbound_turn
from services.handoff.store import ApplyRequest, CommandSnapshot, ModeStore, QueuedOutput

log = structlog.get_logger()

Role = Literal["events", "outbound", "human_queue"]
MAX_CONFLICT_RETRIES = 20


@dataclass(frozen=True)
class CommandResult:
    """What a command produced: its outcome code and the records to emit, by topic role."""

    code: str  # "accepted" or a rejection code
    outputs: list[tuple[Role, str, str]]  # (role, key, JSON value)
    state_version: int | None = None
    # The counters to add once the outputs are written: none for a replay or a duplicate.
    counters: tuple[Counter, ...] = ()

    def to_outputs(self, topics: Topics) -> list[Output]:
        return [Output(topics.for_role(r), key, value.encode()) for r, key, value in self.outputs]


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


class CommandService:
    def __init__(self, store: ModeStore, minute_ms: int, ticket_turns: int) -> None:
        self._store = store
        self._minute_ms = minute_ms
        self._ticket_turns = ticket_turns

    async def execute(
        self,
        command: HandoffCommand,
        src: str,
        entry: Entry,
        audit: Callable[[str], QueuedOutput] | None = None,
    ) -> CommandResult:
        """Decides and stores the command once; a replay of `src` returns the stored result.

        A command that did not come from a topic (`entry.topic` None: the operator API) has
        no Kafka transaction to carry its outputs: they are queued in the shard outbox in the
        same atomic step. `audit(code)` adds the audit record of the outcome to them."""
        ikey = interaction_key(command)
        if command.user.external_id is not None and not command.live_test:
            await self._store.remember_user_agent(
                command.tenant_id, command.user.channel, command.user.external_id, command.agent_id
            )
        for _ in range(MAX_CONFLICT_RETRIES):
            snap = await self._store.command_snapshot(
                ikey, command.tenant_id, command.agent_id, self._ticket_turns
            )
            decision = plan_transition(
                command, snap.state, snap.published, snap.now_ms, self._minute_ms, entry.authority
            )
            plan = self._plan(command, decision, snap, src, entry)
            if audit is not None:
                plan.result["outputs"].append(audit(plan.result["code"]))
            stored = await self._store.apply(replace(plan, to_outbox=entry.topic is None))
            if stored["status"] == "conflict":
                continue  # another change won the race: decide again on the new state
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

    def _plan(
        self,
        command: HandoffCommand,
        decision: Transition | Rejection,
        snap: CommandSnapshot,
        src: str,
        entry: Entry,
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
            rejection = {
                "code": decision.code,
                "outputs": [("events", ikey, rejected.model_dump_json()), *audit],
            }
            return ApplyRequest(
                ikey, command.command_id, src, snap.state.version, None, None, rejection
            )
        change = change_record(ikey, decision.before, decision.after, decision.event_id)
        outputs: list[tuple[Role, str, str]] = [
            ("events", ikey, mode_changed(change, self._minute_ms).model_dump_json())
        ]
        turn = ""
        if decision.after.mode == "human":
            notice = self._notice(command, snap)
            ticket = self._ticket(command, decision, snap, notice)
            outputs += [
                ("outbound", ikey, notice.model_dump_json()),
                ("human_queue", ikey, ticket.model_dump_json()),
            ]
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
            ikey, command.command_id, src, snap.state.version, decision.after, change, result, turn
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

    def _notice(self, command: HandoffCommand, snap: CommandSnapshot) -> OutboundMessage:
        """R3: the one system message that tells the user a human teammate has it."""
        return OutboundMessage(
            **ids_of(command),
            event_id=derived_id("notice", command.command_id),
            conversation_id=_last_conversation(snap),
            sender="system",
            text=notice_text(snap.published),
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
            conversation_id=_last_conversation(snap),
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
    ) -> HandoffTicket:
        turns = [TranscriptTurn.model_validate(t) for t in snap.transcript]
        turns.append(outbound_turn(notice))  # as every message sent to the user is recorded
        return HandoffTicket(
            **ids_of(command),
            ticket_id=ticket_id_of(command.command_id),
            cause=command.source,
            actor=command.actor,
            reason=command.reason,
            created_at=at_ms(snap.now_ms),
            expires_at=optional_at_ms(decision.after.expires_at_ms),
            state_version=decision.after.version,
            command_id=command.command_id,
            transcript=turns,
        )


def _last_conversation(snap: CommandSnapshot) -> str | None:
    found = (t.get("conversation_id") for t in reversed(snap.transcript))
    return next((c for c in found if c), None)


class CommandConsumer:
    """The batch handler of handoff.commands and handoff.operator-commands: one command at a
    time, in order. The topic a record came on is its authority (R22): the agents' topic
    grants `agent`; the operator topic, whose writers the deployment's ACLs restrict to the
    API's and ops tools' principals, grants `operator`."""

    def __init__(self, service: CommandService, topics: Topics) -> None:
        self._service = service
        self._topics = topics
        self._entries = {
            topics.commands: Entry("agent", topics.commands),
            topics.operator_commands: Entry("operator", topics.operator_commands),
        }

    @property
    def topic_names(self) -> list[str]:
        return list(self._entries)

    async def __call__(self, records: Sequence[Record]) -> Handled:
        handled = Handled()
        for record in records:
            command = decode(record, HandoffCommand)
            if not isinstance(command, HandoffCommand):
                handled.dead_letter(self._topics.dead_letter, command)
                continue
            src = f"{record.topic}/{record.partition}/{record.offset}"
            result = await self._service.execute(command, src, self._entries[record.topic])
            handled.outputs += result.to_outputs(self._topics)
            for counter in result.counters:
                handled.count(counter)
        return handled
