"""Audit records of state-changing operator calls (OperatorAction on handoff.events)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import structlog

from schemas import OperatorAction
from services.common.kafka import Output
from services.common.settings import Topics
from services.handoff.api.auth import Operator

log = structlog.get_logger()


def audit(
    topics: Topics,
    operator: Operator,
    action: str,
    key: str,
    target: str,
    outcome: str,
    command_id: str | None = None,
) -> Output:
    """The audit record to send, keyed like the records it is about (`key`)."""
    record = action_record(operator, action, target, outcome, command_id)
    log_action(record, key)
    return Output.of(topics.events, key, record)


def action_record(
    operator: Operator, action: str, target: str, outcome: str, command_id: str | None = None
) -> OperatorAction:
    """An audit record not logged yet: for a call whose record is written with its change
    (the shard outbox), logged by `log_action` once the change is made."""
    return OperatorAction.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "tenant_id": operator.tenant,
            "actor": operator.actor,
            "role": operator.role,
            "token_id": operator.token_id,
            "action": action,
            "target": target,
            "outcome": outcome,
            "command_id": command_id,
            "at": datetime.now(UTC),
        }
    )


def log_action(record: OperatorAction, key: str) -> None:
    interaction = key.count(":") >= 3
    log.info(
        "operator_action",
        interaction=key if interaction else None,
        target=None if interaction else record.target,
        actor=record.actor,
        role=record.role,
        token_id=record.token_id,
        action=record.action,
        outcome=record.outcome,
        command_id=record.command_id,
        event_id=record.event_id,
    )
