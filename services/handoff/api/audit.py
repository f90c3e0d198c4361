"""Audit records of state-changing operator calls (OperatorAction on handoff.events)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import structlog

from schemas import OperatorAction
from services.handoff.api.auth import Operator
from services.handoff.state.store import QueuedOutput

log = structlog.get_logger()


def audit(
    operator: Operator,
    action: str,
    key: str,
    target: str,
    outcome: str,
    command_id: str | None = None,
) -> QueuedOutput:
    """The audit record to queue with the change it is about, keyed like it (`key`)."""
    record = OperatorAction.model_validate(
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
    log.info(
        "operator_action",
        interaction=key if key.count(":") >= 3 else None,
        target=None if key.count(":") >= 3 else target,
        actor=operator.actor,
        role=operator.role,
        token_id=operator.token_id,
        action=action,
        outcome=outcome,
        command_id=command_id,
        event_id=record.event_id,
    )
    return ("events", key, record.model_dump_json())
