"""A tenant's canned replies (issue 14), in Redis: the texts a teammate inserts in the reply
box. One hash per tenant (`keys.canned_replies_key`); every change is one function call
(`ho_canned_put`) that queues its audit record in the tenant's shard outbox."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal, cast

from services.handoff.state.keys import canned_replies_key, outbox_key, tenant_tag
from services.handoff.state.outbox import QueuedOutput
from services.handoff.state.reader import StateClient

Audit = list[QueuedOutput]  # the change's OperatorAction record(s), queued with it
Outcome = Literal["created", "replaced", "deleted", "not_found", "too_many"]


@dataclass(frozen=True)
class CannedReply:
    id: str
    title: str
    text: str
    updated_at: str
    updated_by: str


class CannedReplies:
    def __init__(self, state: StateClient, max_replies: int) -> None:
        self._state = state
        self._max = max_replies

    async def list(self, tenant_id: str) -> list[CannedReply]:
        raw = cast(dict[str, str], await self._state.redis.hgetall(canned_replies_key(tenant_id)))
        replies = [CannedReply(id=k, **json.loads(v)) for k, v in raw.items()]
        return sorted(replies, key=lambda r: (r.title.casefold(), r.id))

    async def put(self, tenant_id: str, reply: CannedReply, audit: Audit) -> Outcome:
        doc = {k: v for k, v in reply.__dict__.items() if k != "id"}
        return await self._call(tenant_id, reply.id, json.dumps(doc), audit)

    async def delete(self, tenant_id: str, reply_id: str, audit: Audit) -> Outcome:
        return await self._call(tenant_id, reply_id, "", audit)

    async def _call(self, tenant_id: str, reply_id: str, doc: str, audit: Audit) -> Outcome:
        tag = tenant_tag(tenant_id)
        call = (
            "FCALL", "ho_canned_put", 2, canned_replies_key(tenant_id), outbox_key(tag), tag,
            reply_id, doc, self._max, json.dumps(audit),
        )  # fmt: skip
        [outcome] = await self._state._pipeline("canned_put", [call])
        return cast(Outcome, outcome)
