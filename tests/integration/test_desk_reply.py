"""The desk reply use case (service/desk_reply.py) on real Redis: what it queues in the outbox.

With tracing off (the default) no span is made, and a reply must still carry on the trace
context the desk was given (stored by the desk feed), as a consumer passes its record's
headers on: the reply joins the user's trace in whatever collector the channel reports to."""

from __future__ import annotations

import uuid

from schemas import EndUser, InteractionIds, interaction_key
from services.common import tracing
from services.common.settings import CommonSettings
from services.handoff.service.desk_reply import DeskReplies, DeskReply, NotInHumanModeError
from services.handoff.state.keys import InteractionKeys
from services.handoff.state.store import ModeStore

TRACEPARENT = "00-aaaabbbbccccddddeeeeffff00001111-1111222233334444-01"


def new_user() -> InteractionIds:
    user = EndUser(channel="web", external_id=f"u{uuid.uuid4().hex[:8]}")
    return InteractionIds(tenant_id=f"t{uuid.uuid4().hex[:8]}", agent_id="support", user=user)


async def outbox_of(
    store: ModeStore, ikey: str
) -> list[tuple[list[tuple[str, str, str]], list[dict[str, str]]]]:
    shard = int(InteractionKeys(ikey).tag.strip("{}h"))
    entries = await store.read_outboxes({shard: 0}, 10_000)
    return [(e.outputs, e.traces) for e in entries if any(o[1] == ikey for o in e.outputs)]


async def test_with_tracing_off_a_reply_carries_the_desks_trace_context_on(
    store: ModeStore, settings: CommonSettings
) -> None:
    assert not tracing.enabled()
    ids = new_user()
    ikey = interaction_key(ids)
    await store.remember_trace(ikey, {"traceparent": TRACEPARENT})
    replies = DeskReplies(store, settings.topics)
    sent = await replies.send(
        DeskReply(ids, "Hi, Jane here.", require_human=False),
        "api",
        lambda message: ("events", ikey, '{"type":"operator_action"}'),
    )
    [(outputs, traces)] = await outbox_of(store, ikey)
    assert [role for role, _, _ in outputs] == ["outbound", "events"]
    assert sent.message.event_id in outputs[0][2]
    assert traces == [{"traceparent": TRACEPARENT}] * 2


async def test_a_reply_while_the_ai_has_the_user_is_refused_and_queues_nothing(
    store: ModeStore, settings: CommonSettings
) -> None:
    ids = new_user()
    ikey = interaction_key(ids)
    replies = DeskReplies(store, settings.topics)
    try:
        await replies.send(DeskReply(ids, "hello?"), "api", lambda m: ("events", ikey, "{}"))
    except NotInHumanModeError:
        pass
    else:
        raise AssertionError("a reply in AI mode was accepted")
    assert await outbox_of(store, ikey) == []
