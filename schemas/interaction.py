"""The interaction key: the Kafka key of every record about one (tenant, agent, end user)."""

from __future__ import annotations

from typing import Any

from schemas.events import InteractionIds


def interaction_key(ids: InteractionIds) -> str:
    """`{tenant_id}:{agent_id}:{channel}:{external_id}`; an anonymous user has an empty tail."""
    return f"{ids.tenant_id}:{ids.agent_id}:{ids.user.channel}:{ids.user.external_id or ''}"


def parse_interaction_key(key: str) -> InteractionIds:
    """The inverse of interaction_key; ids never contain ':' but an external id may."""
    tenant_id, agent_id, channel, external_id = key.split(":", 3)
    return InteractionIds.model_validate(
        {
            "tenant_id": tenant_id,
            "agent_id": agent_id,
            "user": {"channel": channel, "external_id": external_id or None},
        }
    )


def ids_of(ids: InteractionIds) -> dict[str, Any]:
    """The interaction fields, to open another event about the same interaction."""
    return {"tenant_id": ids.tenant_id, "agent_id": ids.agent_id, "user": ids.user}
