"""Tiny builders shared by the unit tests: valid events with one field changed at a time."""

from __future__ import annotations

from typing import Any

from schemas import AgentReply, HandoffCommand, UserMessage
from services.handoff.domain.modes import AgentVersion, HandoffConfig

NOW_MS = 1_714_564_800_000  # 2024-05-01T12:00:00Z
MINUTE_MS = 60_000


def ids(external_id: str | None = "alice") -> dict[str, Any]:
    return {
        "tenant_id": "acme",
        "agent_id": "support",
        "user": {"channel": "web", "external_id": external_id},
    }


def attachment(n: int = 0) -> dict[str, Any]:
    return {
        "id": f"att-{n}",
        "name": f"photo-{n}.png",
        "content_type": "image/png",
        "size": 1024 + n,
        "url": f"https://files.example/att-{n}",
    }


def message_data(**extra: Any) -> dict[str, Any]:
    return {
        "type": "user_message",
        "schema_version": 1,
        "event_id": "m-1",
        **ids(),
        "conversation_id": "c-1",
        "text": "hello",
        "attachments": [],
        "sent_at": "2024-05-01T12:00:00Z",
        **extra,
    }


def message(**extra: Any) -> UserMessage:
    return UserMessage.model_validate(message_data(**extra))


def command(
    action: str = "to_human", source: str = "agent", external_id: str | None = "alice", **extra: Any
) -> HandoffCommand:
    return HandoffCommand.model_validate(
        {
            "command_id": "cmd-1",
            **ids(external_id),
            "action": action,
            "source": source,
            "actor": "agent:support@3" if source == "agent" else "operator:jane",
            "reason": "The user asked for a person.",
            "requested_at": "2024-05-01T12:00:00Z",
            **extra,
        }
    )


def reply(**extra: Any) -> AgentReply:
    return AgentReply.model_validate(
        {
            "reply_id": "r-1",
            **ids(),
            "conversation_id": "c-1",
            "in_reply_to": "m-1",
            "text": "Here is my answer.",
            "state_version": 4,
            **extra,
        }
    )


def published(
    enabled: bool = True, idle: int | None = None, notice: str = "A teammate will reply here."
) -> AgentVersion:
    return AgentVersion(version=3, handoff=HandoffConfig(enabled, idle, "", notice))
