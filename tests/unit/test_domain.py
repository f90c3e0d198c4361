"""The handoff rules without I/O: check_command (R22, R2, R7) and plan_transition (R3, R5, R6).

Unless a test is about R22, a command is checked with the authority it claims, as the entry
point that grants it (the agents' topic, the operator topic or the API) would."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.ids import derived_id
from services.handoff.domain.modes import (
    DEFAULT_NOTICE,
    ModeState,
    Rejection,
    Transition,
    check_command,
    notice_text,
    plan_transition,
)
from tests.unit.builders import MINUTE_MS, NOW_MS, command, published

HUMAN = ModeState(
    mode="human",
    cause="agent",
    actor="agent:support@3",
    reason="asked for a person",
    changed_at_ms=NOW_MS - 5_000,
    expires_at_ms=NOW_MS + 25 * MINUTE_MS,
    idle_ms=30 * MINUTE_MS,
    human_since_ms=NOW_MS - 5_000,
    version=4,
    command_id="cmd-0",
)


@pytest.mark.parametrize(
    ("cmd", "version", "code"),
    [
        (command(live_test=True), published(), "live_test"),
        (command(source="operator", live_test=True), published(), "live_test"),
        (command(external_id=None), published(), "anonymous_user"),
        (command(action="to_ai", source="operator", external_id=None), None, "anonymous_user"),
        (command(action="to_ai"), published(), "not_allowed"),
        (command(idle_timeout_minutes=5), published(), "not_allowed"),
        (command(), None, "agent_not_published"),
        (command(source="operator"), None, "agent_not_published"),
        (command(), published(enabled=False), "handoff_disabled"),
        (command(source="operator"), published(enabled=False), "handoff_disabled"),
    ],
)
def test_check_command_rejects(cmd: Any, version: Any, code: str) -> None:
    rejection = check_command(cmd, version, cmd.source)
    assert isinstance(rejection, Rejection)
    assert rejection.code == code
    assert rejection.detail


@pytest.mark.parametrize(
    ("cmd", "version"),
    [
        (command(), published()),
        (command(source="operator", idle_timeout_minutes=0), published()),
        (command(action="to_ai", source="operator"), None),  # R7: human -> AI always
        (command(action="to_ai", source="operator"), published(enabled=False)),
    ],
)
def test_check_command_accepts(cmd: Any, version: Any) -> None:
    assert check_command(cmd, version, cmd.source) is None


@pytest.mark.parametrize(
    "cmd",
    [
        command(action="to_ai", source="operator"),
        command(source="operator", idle_timeout_minutes=0),
        command(source="operator", live_test=True),  # authority is checked first
        command(actor="operator:ceo@acme"),  # an agent's command naming an operator
    ],
)
def test_r22_agent_authority_cannot_act_as_an_operator(cmd: Any) -> None:
    rejection = check_command(cmd, published(), "agent")
    assert rejection is not None and rejection.code == "not_allowed"


def test_r22_operator_authority_also_carries_agent_commands() -> None:
    assert check_command(command(), published(), "operator") is None


AI = ModeState()


def plan(cmd: Any, state: ModeState = AI, version: Any = None) -> Transition:
    result = plan_transition(cmd, state, version or published(), NOW_MS, MINUTE_MS, cmd.source)
    assert isinstance(result, Transition), result
    return result


def test_a_rejected_command_is_not_planned() -> None:
    result = plan_transition(
        command(live_test=True), ModeState(), published(), NOW_MS, MINUTE_MS, "agent"
    )
    assert isinstance(result, Rejection)
    assert result.code == "live_test"


@pytest.mark.parametrize(
    ("cmd", "state"),
    [(command(), HUMAN), (command(action="to_ai", source="operator"), ModeState())],
)
def test_already_in_mode(cmd: Any, state: ModeState) -> None:
    result = plan_transition(cmd, state, published(), NOW_MS, MINUTE_MS, cmd.source)
    assert isinstance(result, Rejection)
    assert result.code == "already_in_mode"


def test_to_human_keeps_cause_actor_reason_and_bumps_the_version() -> None:
    before = ModeState(version=7)
    t = plan(command(), before)
    assert t.before == before
    assert t.after.mode == "human"
    assert (t.after.cause, t.after.actor, t.after.reason) == (
        "agent",
        "agent:support@3",
        "The user asked for a person.",
    )
    assert t.after.version == 8
    assert t.after.changed_at_ms == t.after.human_since_ms == NOW_MS
    assert t.after.command_id == "cmd-1"
    assert t.event_id == derived_id("mode_changed", "cmd-1", 8)


def test_published_idle_timeout_sets_the_expiry() -> None:
    t = plan(command(), version=published(idle=30))
    assert t.after.idle_ms == 30 * MINUTE_MS
    assert t.after.expires_at_ms == NOW_MS + 30 * MINUTE_MS


def test_without_idle_timeout_human_mode_has_no_expiry() -> None:  # R6
    t = plan(command(), version=published(idle=None))
    assert t.after.idle_ms is None
    assert t.after.expires_at_ms is None


@pytest.mark.parametrize(("override", "idle_minutes"), [(5, 5), (120, 120), (0, None)])
def test_operator_override_wins_and_zero_means_no_timeout(
    override: int, idle_minutes: int | None
) -> None:
    t = plan(command(source="operator", idle_timeout_minutes=override), version=published(idle=30))
    expected_idle = idle_minutes * MINUTE_MS if idle_minutes else None
    assert t.after.idle_ms == expected_idle
    assert t.after.expires_at_ms == (NOW_MS + expected_idle if expected_idle else None)


def test_to_ai_clears_expiry_and_human_since() -> None:
    t = plan(command(action="to_ai", source="operator", idle_timeout_minutes=9), HUMAN)
    assert t.after.mode == "ai"
    assert t.after.cause == "operator"
    assert t.after.expires_at_ms is None
    assert t.after.idle_ms is None
    assert t.after.human_since_ms is None
    assert t.after.version == HUMAN.version + 1


def test_derived_id_is_stable_and_distinct() -> None:
    assert derived_id("notice", "cmd-1") == derived_id("notice", "cmd-1")
    ids = {
        derived_id("notice", "cmd-1"),
        derived_id("ticket", "cmd-1"),
        derived_id("notice", "cmd-2"),
        derived_id("mode_changed", "cmd-1", 1),
        derived_id("mode_changed", "cmd-1", 2),
    }
    assert len(ids) == 5


@pytest.mark.parametrize("state", [ModeState(), HUMAN, ModeState(mode="ai", cause="timeout")])
def test_mode_state_redis_round_trip(state: ModeState) -> None:
    raw = state.to_redis()
    assert all(isinstance(v, str) for v in raw.values())
    assert ModeState.from_redis(raw) == state


def test_an_absent_state_is_the_initial_ai_state() -> None:
    assert ModeState.from_redis({}) == ModeState()
    assert ModeState.from_redis({"mode": "?", "cause": "?", "version": ""}) == ModeState()
    assert ModeState().mode == "ai" and ModeState().version == 0


def test_notice_text_falls_back_to_the_default() -> None:
    assert notice_text(published(notice="Hang on!")) == "Hang on!"
    assert notice_text(published(notice="  ")) == DEFAULT_NOTICE
    assert notice_text(None) == DEFAULT_NOTICE
