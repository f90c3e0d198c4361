"""Where an interaction's state lives in Redis.

Every interaction belongs to one of SHARDS shards; the shard's hash tag `{hN}` opens each of
its key names, so the interaction's keys, the shard's deadline index and its outbox share one
Redis Cluster slot and one function can update them together. (The contract suggests the
interaction key itself as the tag; the shard tag keeps that promise, one interaction's keys on
one slot, and adds the deadline index to it.) SHARDS is part of the data layout: changing it
strands existing state, so it is a constant, not a setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

# The shards themselves are services/common/shards.py's (the agent's keys use them too).
from services.common.shards import SHARDS as SHARDS
from services.common.shards import shard_of as shard_of
from services.common.shards import shard_tag as shard_tag


@dataclass(frozen=True)
class InteractionKeys:
    ikey: str

    @cached_property  # every key name opens with it: worked out once (the router's hot path)
    def tag(self) -> str:
        return shard_tag(shard_of(self.ikey))

    def _key(self, kind: str) -> str:
        return f"ho:{kind}:{self.tag}:{self.ikey}"

    @property
    def state(self) -> str:
        return self._key("state")

    @property
    def lease(self) -> str:
        return self._key("lease")

    @property
    def history(self) -> str:
        return self._key("history")

    @property
    def transcript(self) -> str:
        return self._key("transcript")

    @property
    def trace(self) -> str:
        """The trace context of the latest record queued for the desk (tracing.py)."""
        return self._key("trace")

    @property
    def deadlines(self) -> str:
        return deadlines_key(self.tag)

    @property
    def outbox(self) -> str:
        return outbox_key(self.tag)

    def seen(self, event_id: str) -> str:
        return f"{self._key('seen')}\x1f{event_id}"

    def reply(self, reply_id: str) -> str:
        return f"{self._key('reply')}\x1f{reply_id}"

    def human_reply(self, event_id: str) -> str:
        return f"{self._key('human')}\x1f{event_id}"

    def command(self, command_id: str) -> str:
        return f"{self._key('cmd')}\x1f{command_id}"


def deadlines_key(tag: str) -> str:
    return f"ho:deadlines:{tag}"


def outbox_key(tag: str) -> str:
    return f"ho:outbox:{tag}"


# The tenant's lists (agents, users) read these per-shard indexes: sorted sets whose members
# all have score 0, so they sort by name and a tenant's (or an agent's) members are one
# lexical range (ids have no ':'). The function that writes an agent or an interaction adds
# it to its own shard's index in the same step; a list reads the range on every shard.


def agents_index_key(tag: str) -> str:
    """The shard's agents, as `tenant:agent`."""
    return f"ho:agents:{tag}"


def interactions_index_key(tag: str) -> str:
    """The shard's interactions, as their interaction keys `tenant:agent:channel:user`."""
    return f"ho:interactions:{tag}"


# Set once the agents and interactions stored before these indexes existed were added to them.
LISTS_BACKFILLED_KEY = "ho:lists-backfilled:v1"


def agent_tag(tenant_id: str, agent_id: str) -> str:
    """The shard of an agent's versions: its hash and the outbox of its events share a slot."""
    return shard_tag(shard_of(f"{tenant_id}:{agent_id}"))


def agent_key(tenant_id: str, agent_id: str) -> str:
    return f"ho:agent:{agent_tag(tenant_id, agent_id)}:{tenant_id}:{agent_id}"


def user_agents_key(tenant_id: str, channel: str, external_id: str) -> str:
    """The agents a user has talked to (for the operator view of R8). Its own slot."""
    return f"ho:user:{tenant_id}:{channel}:{external_id}"


# Tickets (R14-R18). A ticket's own keys sit on its interaction's shard (its id names the
# shard, see tickets.ticket_id_for); the shard indexes its open tickets and pickup deadlines.


def ticket_key(tag: str, ticket_id: str) -> str:
    return f"ho:ticket:{tag}:{ticket_id}"


def ticket_history_key(tag: str, ticket_id: str) -> str:
    return f"ho:ticket_history:{tag}:{ticket_id}"


def shard_tickets_key(tag: str) -> str:
    """The shard's open tickets: ticket id -> handoff time (ms)."""
    return f"ho:tickets:{tag}"


def pickup_key(tag: str) -> str:
    """The shard's pickup deadlines (R18): ticket id -> due time (ms)."""
    return f"ho:pickup:{tag}"


# Per tenant and queue, on their own slots: indexes maintained right after each ticket step
# and read self-healing (the ticket's hash is the truth), plus the queue's statistics.


def tenant_tag(tenant_id: str) -> str:
    """The shard of a tenant's queue settings: their hash and the outbox of their audit
    records share a slot."""
    return shard_tag(shard_of(tenant_id))


def queues_key(tenant_id: str) -> str:
    """The tenant's queue settings: queue -> settings JSON, `{queue}@version` -> version."""
    return f"ho:queues:{tenant_tag(tenant_id)}:{tenant_id}"


def queue_tickets_key(tenant_id: str, queue: str) -> str:
    """The queue's open tickets (queued and assigned): ticket id -> handoff time (ms)."""
    return f"ho:queue:{{{tenant_id}:{queue}}}:tickets"


def queue_pickups_key(tenant_id: str, queue: str) -> str:
    """The queue's recent pickups: `{wait_ms}:{ticket_id}:{version}` -> picked up at (ms)."""
    return f"ho:queue:{{{tenant_id}:{queue}}}:pickups"


def teammates_key(tenant_id: str) -> str:
    """Teammates seen lately (R16's "teammates online"): operator `sub` -> last seen (ms)."""
    return f"ho:teammates:{{{tenant_id}}}"


def canned_replies_key(tenant_id: str) -> str:
    """The tenant's canned replies: reply id -> {title, text, updated_at, updated_by} JSON; on
    the slot of the tenant's queue settings, whose outbox takes their audit records."""
    return f"ho:canned:{tenant_tag(tenant_id)}:{tenant_id}"


def presence_key(ikey: str) -> str:
    """Who is replying to the interaction's user right now (ephemeral, a short TTL): operator
    `sub` -> {name, activity, until} JSON."""
    return f"ho:presence:{shard_tag(shard_of(ikey))}:{ikey}"
