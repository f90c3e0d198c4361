"""One table of bounds (services/handoff/domain/limits.py) that every entry point reads.

The rule test of the Kafka path: an operator's override outside the switch bound is refused
by check_command itself, so a command on handoff.operator-commands meets the same bound as
the API's request model, whatever the contract's wire bound allows."""

from __future__ import annotations

import pytest

from schemas import HandoffCommand
from services.handoff.api import models
from services.handoff.domain import limits
from services.handoff.domain.modes import Rejection, check_command
from tests.unit.builders import command, published


def test_the_switch_bound_holds_on_the_kafka_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "services.handoff.domain.modes.SWITCH_IDLE_TIMEOUT_MINUTES", limits.Bound(0, 24 * 60)
    )
    over = command(source="operator", idle_timeout_minutes=24 * 60 + 1)
    rejection = check_command(over, published(), "operator")
    assert isinstance(rejection, Rejection)
    assert rejection.code == "invalid_idle_timeout"
    assert "0-1440" in rejection.detail
    at_bound = command(source="operator", idle_timeout_minutes=24 * 60)
    assert check_command(at_bound, published(), "operator") is None


def test_a_source_that_is_not_an_operator_has_no_operator_powers() -> None:
    # A source the rules do not know (a record written by hand) must not slip past the agent
    # checks: `model_construct` skips the contract's validation on purpose.
    base = command(source="operator", action="to_ai")
    odd = HandoffCommand.model_construct(**{**dict(base), "source": "system"})
    rejection = check_command(odd, published(), "agent")
    assert isinstance(rejection, Rejection) and rejection.code == "not_allowed"


@pytest.mark.parametrize(
    ("schema", "field", "bound"),
    [
        (models.SwitchToHuman, "idle_timeout_minutes", limits.SWITCH_IDLE_TIMEOUT_MINUTES),
        (models.HandoffSettingsBody, "idle_timeout_minutes", limits.IDLE_TIMEOUT_MINUTES),
        (models.IdleExtend, "minutes", limits.EXTEND_MINUTES),
    ],
)
def test_the_api_models_check_the_domain_bounds(
    schema: type[models.Body], field: str, bound: limits.Bound
) -> None:
    prop = schema.model_json_schema()["properties"][field]["anyOf"][0]
    assert (prop["minimum"], prop["maximum"]) == (bound.min, bound.max)


def test_the_table_names_every_bound_the_console_uses() -> None:
    table = limits.table()
    assert table["idle_timeout_minutes"] == {"min": 1, "max": limits.WEEK_MINUTES}
    assert table["switch_idle_timeout_minutes"] == {"min": 0, "max": limits.WEEK_MINUTES}
    assert {"pickup_target_minutes", "reason_chars", "notice_chars"} <= table.keys()
