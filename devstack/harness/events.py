"""Builders of the raw JSON events tests send, as a channel, an agent or an operator would."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def now() -> str:
    return datetime.now(UTC).isoformat()


def new_id(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Who:
    """One interaction: a tenant's agent and an end user."""

    tenant: str
    agent: str
    channel: str = "web"
    user: str | None = "alice"

    @property
    def key(self) -> str:
        return f"{self.tenant}:{self.agent}:{self.channel}:{self.user or ''}"

    def ids(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant,
            "agent_id": self.agent,
            "user": {"channel": self.channel, "external_id": self.user},
        }

    def other_agent(self, agent: str) -> Who:
        return Who(self.tenant, agent, self.channel, self.user)

    def message(self, text: str = "hello", **extra: Any) -> dict[str, Any]:
        return {
            "type": "user_message",
            "schema_version": 1,
            "event_id": new_id("m-"),
            **self.ids(),
            "conversation_id": "c-1",
            "text": text,
            "attachments": [],
            "sent_at": now(),
            **extra,
        }

    def command(
        self, action: str = "to_human", source: str = "agent", **extra: Any
    ) -> dict[str, Any]:
        return {
            "type": "handoff_command",
            "schema_version": 1,
            "command_id": new_id("cmd-"),
            **self.ids(),
            "action": action,
            "source": source,
            "actor": f"{source}:{self.agent}@1" if source == "agent" else "operator:jane",
            "reason": "The user asked to talk to a person.",
            "live_test": False,
            "requested_at": now(),
            **extra,
        }

    def reply(
        self, in_reply_to: str, state_version: int, text: str = "AI answer"
    ) -> dict[str, Any]:
        return {
            "type": "agent_reply",
            "schema_version": 1,
            "reply_id": new_id("r-"),
            **self.ids(),
            "conversation_id": "c-1",
            "in_reply_to": in_reply_to,
            "text": text,
            "state_version": state_version,
        }


def attachment(n: int) -> dict[str, Any]:
    return {
        "id": f"att-{n}",
        "name": f"photo-{n}.png",
        "content_type": "image/png",
        "size": 1000 + n,
        "url": f"https://files.example/att-{n}.png",
    }


def key_of(value: dict[str, Any]) -> str:
    """The interaction key of an event's JSON (a RoutedMessage's is its message's)."""
    ids = value.get("message", value)
    user = ids["user"]
    return f"{ids['tenant_id']}:{ids['agent_id']}:{user['channel']}:{user['external_id'] or ''}"
