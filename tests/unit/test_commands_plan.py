"""What an accepted or rejected command emits (CommandService._plan, R2 R3), without Redis."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from schemas import (
    CommandRejected,
    HandoffCommand,
    HandoffTicket,
    ModeChanged,
    OperatorAction,
    OutboundMessage,
    TranscriptTurn,
)
from services.common.ids import derived_id
from services.handoff.domain.modes import (
    DEFAULT_RETURN_NOTICE,
    AgentVersion,
    ModeState,
    plan_transition,
)
from services.handoff.service.commands import API, CommandService, Entry
from services.handoff.state.store import CommandSnapshot
from tests.unit.builders import MINUTE_MS, NOW_MS, attachment, command, published

NOTICE = "Jane from support will reply here shortly."
IKEY = "acme:support:web:alice"
TRANSCRIPT: list[dict[str, Any]] = [
    {
        "event_id": "m-1",
        "conversation_id": "c-7",
        "role": "user",
        "text": "my order is broken",
        "attachments": [attachment()],
        "at": "2024-05-01T11:58:00Z",
    },
    {"event_id": "r-1", "role": "ai", "text": "Sorry!", "at": "2024-05-01T11:59:00Z"},
]


AT_V2 = ModeState(version=2)


def run_plan(cmd: HandoffCommand, state: ModeState = AT_V2, **kw: Any) -> tuple[Any, ...]:
    snap = CommandSnapshot(
        now_ms=NOW_MS,
        state=state,
        published=kw.get("version", published(idle=30, notice=NOTICE)),
        transcript=TRANSCRIPT,
    )
    entry = kw.get("entry", Entry(cmd.source, f"handoff.{cmd.source}-topic"))
    decision = plan_transition(
        cmd, snap.state, snap.published, snap.now_ms, MINUTE_MS, entry.authority
    )
    service = CommandService(store=None, minute_ms=MINUTE_MS, ticket_turns=20)  # type: ignore[arg-type]
    r = service._plan(cmd, decision, snap, "handoff.commands/0/7", entry)
    assert (r.ikey, r.command_id, r.src) == (IKEY, cmd.command_id, "handoff.commands/0/7")
    return (r.expected_version, r.new_state, r.change, r.result, r.turn_json)


def test_accepted_to_human_emits_mode_changed_notice_and_ticket() -> None:
    expected_version, new_state, change, result, turn = run_plan(command())
    assert expected_version == 2
    assert new_state.mode == "human" and new_state.version == 3
    assert change["event_id"] == derived_id("mode_changed", "cmd-1", 3)
    assert result["code"] == "accepted" and result["version"] == 3
    assert [(role, key) for role, key, _ in result["outputs"]] == [
        ("events", IKEY),
        ("outbound", IKEY),
        ("human_queue", IKEY),
    ]
    values = [value for _, _, value in result["outputs"]]
    changed = ModeChanged.model_validate_json(values[0])
    notice = OutboundMessage.model_validate_json(values[1])
    ticket = HandoffTicket.model_validate_json(values[2])

    expires = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert (changed.from_mode, changed.to_mode, changed.cause) == ("ai", "human", "agent")
    assert (changed.actor, changed.reason) == ("agent:support@3", "The user asked for a person.")
    assert (changed.state_version, changed.command_id) == (3, "cmd-1")
    assert (changed.expires_at, changed.idle_timeout_minutes) == (expires, 30)

    assert (notice.sender, notice.text) == ("system", NOTICE)
    assert notice.conversation_id == "c-7"  # the user's latest conversation
    assert notice.event_id == derived_id("notice", "cmd-1")

    assert (ticket.cause, ticket.reason, ticket.expires_at) == ("agent", changed.reason, expires)
    assert (ticket.state_version, ticket.command_id) == (3, "cmd-1")
    assert [t.event_id for t in ticket.transcript] == ["m-1", "r-1", notice.event_id]
    assert ticket.transcript[0].attachments[0].model_dump() == attachment()
    last = ticket.transcript[-1]
    assert (last.role, last.text, last.at) == ("system", NOTICE, notice.sent_at)
    assert TranscriptTurn.model_validate_json(turn) == last


def test_a_replayed_command_plans_byte_identical_outputs() -> None:  # R10
    assert run_plan(command()) == run_plan(command())


def test_accepted_to_ai_emits_mode_changed_and_the_captured_return_notice() -> None:  # R20
    human = ModeState(
        mode="human",
        cause="agent",
        version=5,
        human_since_ms=NOW_MS - 1,
        return_notice="Back with the bot, as agreed when the handoff began.",
    )
    _, new_state, _, result, turn = run_plan(command("to_ai", "operator"), human, entry=API)
    assert new_state.mode == "ai" and new_state.return_notice == ""
    assert [role for role, _, _ in result["outputs"]] == ["events", "outbound"]
    changed = ModeChanged.model_validate_json(result["outputs"][0][2])
    assert (changed.from_mode, changed.to_mode, changed.cause) == ("human", "ai", "operator")
    assert changed.expires_at is None and changed.state_version == 6
    notice = OutboundMessage.model_validate_json(result["outputs"][1][2])
    assert (notice.sender, notice.text) == ("system", human.return_notice)
    assert notice.event_id == derived_id("return_notice", "cmd-1")
    assert notice.conversation_id == "c-7"
    recorded = TranscriptTurn.model_validate_json(turn)
    assert (recorded.event_id, recorded.role, recorded.text) == (
        notice.event_id,
        "system",
        human.return_notice,
    )


def test_a_stretch_begun_without_a_captured_notice_returns_with_the_default() -> None:
    human = ModeState(mode="human", cause="agent", version=5, human_since_ms=NOW_MS - 1)
    _, _, _, result, _ = run_plan(command("to_ai", "operator"), human, entry=API)
    notice = OutboundMessage.model_validate_json(result["outputs"][1][2])
    assert notice.text == DEFAULT_RETURN_NOTICE


def test_to_human_captures_the_versions_return_notice_and_the_ticket_id() -> None:  # R20
    version = published(idle=30, notice=NOTICE)
    version = AgentVersion(
        version.version, replace(version.handoff, return_notice_text="See you, from the bot.")
    )
    _, new_state, _, result, _ = run_plan(command(), version=version)
    ticket = HandoffTicket.model_validate_json(result["outputs"][2][2])
    assert new_state.return_notice == "See you, from the bot."
    assert new_state.ticket_id == ticket.ticket_id


def test_rejection_emits_one_command_rejected_and_no_state() -> None:
    expected_version, new_state, change, result, turn = run_plan(
        command(), version=published(enabled=False)
    )
    assert (expected_version, new_state, change, turn) == (2, None, None, "")
    assert result["code"] == "handoff_disabled"
    [(role, key, value)] = result["outputs"]
    assert (role, key) == ("events", IKEY)
    rejected = CommandRejected.model_validate_json(value)
    assert (rejected.code, rejected.command_id) == ("handoff_disabled", "cmd-1")
    assert rejected.event_id == derived_id("rejected", "cmd-1")
    assert rejected.rejected_at == datetime(2024, 5, 1, 12, tzinfo=UTC)


HUMAN_V5 = ModeState(mode="human", cause="agent", version=5, human_since_ms=NOW_MS - 1)


def test_r22_an_operator_topic_command_is_audited_with_its_actor() -> None:
    entry = Entry("operator", "handoff.operator-commands")
    _, new_state, _, result, _ = run_plan(command("to_ai", "operator"), HUMAN_V5, entry=entry)
    assert new_state.actor == "operator:jane"
    # The ModeChanged, the return notice (R20), the audit record.
    assert [role for role, _, _ in result["outputs"]] == ["events", "outbound", "events"]
    audit = OperatorAction.model_validate_json(result["outputs"][2][2])
    assert (audit.actor, audit.role, audit.claimed_actor) == ("operator:jane", None, None)
    assert (audit.via, audit.outcome, audit.target) == (entry.topic, "accepted", IKEY)
    assert audit.event_id == derived_id("operator_action", "cmd-1")


def test_r22_an_operator_claim_on_the_agents_topic_is_rejected_and_audited_as_a_claim() -> None:
    entry = Entry("agent", "handoff.commands")
    _, new_state, change, result, _ = run_plan(command("to_ai", "operator"), HUMAN_V5, entry=entry)
    assert (new_state, change, result["code"]) == (None, None, "not_allowed")
    rejected, audit = (value for _, _, value in result["outputs"])
    assert CommandRejected.model_validate_json(rejected).code == "not_allowed"
    action = OperatorAction.model_validate_json(audit)
    assert (action.actor, action.claimed_actor) == ("kafka:handoff.commands", "operator:jane")
    assert action.outcome == "not_allowed"


def test_r22_the_api_writes_its_own_audit() -> None:
    _, _, _, result, _ = run_plan(command("to_ai", "operator"), HUMAN_V5, entry=API)
    assert all(json.loads(value)["type"] != "operator_action" for _, _, value in result["outputs"])


def test_r22_every_command_on_the_operator_topic_is_audited() -> None:
    entry = Entry("operator", "handoff.operator-commands")
    _, _, _, result, _ = run_plan(command(), entry=entry)  # an agent's handoff, sent by ops
    audit = OperatorAction.model_validate_json(result["outputs"][-1][2])
    assert (audit.actor, audit.outcome, audit.via) == ("agent:support@3", "accepted", entry.topic)
