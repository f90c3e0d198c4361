"""What the ticket and queue tests (R14-R18) share: an agent with queues, a handoff that
returns its ticket, the API paths, and the per-tenant test clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from devstack.harness.bus import Bus
from devstack.harness.events import Who, key_of
from devstack.harness.sandbox import NOTICE
from services.handoff.domain.modes import HandoffConfig
from services.handoff.state.keys import queues_key
from services.handoff.state.store import ModeStore
from services.handoff.state.ticket_store import test_clock_key


async def publish_queues_agent(store: ModeStore, who: Who, **handoff: Any) -> int:
    """Publishes a version with handoff enabled; `handoff` overrides its fields."""
    fields: dict[str, Any] = {"enabled": True, "notice_text": NOTICE, **handoff}
    fields["queues"] = tuple(fields.get("queues", ("default", "billing")))
    config = HandoffConfig(**fields)
    n = await store.apply_agent_version(who.tenant, who.agent, config, "2026-01-01T00:00:00Z", "t")
    await store.publish_agent_version(who.tenant, who.agent, n)
    return n


def of(who: Who, type_: str, **fields: Any) -> Any:
    def match(v: Any) -> bool:
        return (
            isinstance(v, dict)
            and v.get("type") == type_
            and key_of(v) == who.key
            and all(v.get(k) == x for k, x in fields.items())
        )

    return match


async def send_handoff(bus: Bus, who: Who, **extra: Any) -> dict[str, Any]:
    command = who.command("to_human", **extra)
    await bus.send(bus.topics.commands, command, key=who.key)
    return command


async def hand_off(bus: Bus, who: Who, **extra: Any) -> dict[str, Any]:
    """An agent's accepted to_human; returns the ticket's first TicketChanged (queued)."""
    command = await send_handoff(bus, who, **extra)
    [changed] = await bus.wait_for(
        bus.topics.events, lambda v: v.get("command_id") == command["command_id"]
    )
    assert changed["type"] == "mode_changed", changed
    opened = await bus.wait_for(bus.topics.events, of(who, "ticket_changed", from_status=None))
    return opened[-1]  # type: ignore[no-any-return]


def ticket_path(tenant: str, ticket_id: str, action: str = "") -> str:
    return f"/v1/tenants/{tenant}/tickets/{ticket_id}" + (f"/{action}" if action else "")


def queue_path(tenant: str, queue: str, tail: str = "") -> str:
    return f"/v1/tenants/{tenant}/queues/{queue}" + (f"/{tail}" if tail else "")


async def set_clock(store: ModeStore, tenant: str, local: datetime) -> None:
    """Test only: the tenant's opening hours see `local` (an aware time) as now."""
    now = await store.redis_now_ms(queues_key(tenant))
    offset = int(local.timestamp() * 1000) - now
    await store.redis.set(test_clock_key(tenant), offset)
