"""The batch handler of chat.ai-requests: think about each message, answer or hand off.

Per message: read the *published* version's handoff settings (once per agent per batch, as
the agent learnt them from handoff.events: versions.py), ask the brain, count failed turns,
and emit either an `AgentReply` on agent.replies (with the
routing's `state_version`) or a `HandoffCommand` on handoff.commands (and no reply). The
TransactionalProcessor commits the outputs with the batch's offsets. Interactions are
thought about concurrently; one interaction's messages one after the other, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import structlog
from prometheus_client import Counter

from schemas import RoutedMessage, interaction_key
from services.agent.domain import (
    Answer,
    Brain,
    Handoff,
    PublishedVersion,
    Thought,
    Turn,
    after_failures,
    can_hand_off,
    command_for,
    reply_for,
    resumed_of,
    settle,
)
from services.agent.store import AgentStore, Role
from services.common import tracing
from services.common.kafka import Handled, Output, Record, decode
from services.common.settings import Topics

log = structlog.get_logger()

TURNS = Counter(
    "handoff_agent_turns_total",
    "Messages the reference agent handled, by brain and outcome.",
    ["brain", "outcome"],
)


class AgentHandler:
    def __init__(
        self,
        store: AgentStore,
        brain: Brain,
        topics: Topics,
        max_failed_turns: int = 3,
        history_turns: int = 10,
        concurrency: int = 8,
    ) -> None:
        self._store = store
        self._brain = brain
        self._topics = topics
        self._limit = max_failed_turns
        self._history_turns = history_turns
        self._concurrency = asyncio.Semaphore(concurrency)

    async def __call__(self, records: Sequence[Record]) -> Handled:
        handled = [Handled() for _ in records]  # in input order, whatever order they finish in
        groups: dict[str, list[tuple[int, Record, RoutedMessage]]] = {}
        for i, record in enumerate(records):
            item = decode(record, RoutedMessage)
            if isinstance(item, RoutedMessage):
                groups.setdefault(interaction_key(item.message), []).append((i, record, item))
            else:
                handled[i].dead_letter(self._topics.dead_letter, item)
        agents = {(m.message.tenant_id, m.message.agent_id) for g in groups.values() for *_, m in g}
        published = dict(
            zip(agents, await asyncio.gather(*map(self._published, agents)), strict=True)
        )

        async def handle_group(group: list[tuple[int, Record, RoutedMessage]]) -> None:
            async with self._concurrency:
                for i, record, routed in group:
                    version = published[(routed.message.tenant_id, routed.message.agent_id)]
                    with tracing.processing(record) as headers:
                        handled[i] = await self._handle(record, routed, version, headers)

        await asyncio.gather(*(handle_group(g) for g in groups.values()))
        batch = Handled()
        for each in handled:
            batch.extend(each)
        return batch

    async def _published(self, agent: tuple[str, str]) -> PublishedVersion | None:
        return await self._store.published(*agent)

    async def _handle(
        self,
        record: Record,
        routed: RoutedMessage,
        published: PublishedVersion | None,
        headers: tracing.Headers,
    ) -> Handled:
        message = routed.message
        ikey = interaction_key(message)
        handled = Handled()
        if routed.routing.mode != "ai":  # never routed here; a human has this user
            log.warning("not_ai_mode_skipped", interaction=ikey, event_id=message.event_id)
            return handled
        tool = can_hand_off(published, routed)
        turn = Turn(
            text=message.text,
            attachments=tuple(a.name for a in message.attachments),
            instructions=published.instructions if published else "",
            can_hand_off=tool,
            history=await self._history(routed),
            resumed=resumed_of(routed.routing.context),
        )
        thought = settle(await self._brain.think(turn), tool)
        thought = await self._count(routed, thought, tool)
        await self._remember(routed, thought)
        handled.count(TURNS.labels(brain=self._brain.name, outcome=_outcome(thought)))
        tracing.note("handoff.outcome", _outcome(thought))
        log.info(
            "agent_decided",
            interaction=ikey,
            event_id=message.event_id,
            outcome=_outcome(thought),
            state_version=routed.routing.state_version,
            live_test=message.live_test,
        )
        if isinstance(thought, Handoff):
            assert published is not None  # `tool` is only True with a published version
            at = datetime.fromtimestamp(record.timestamp / 1000, UTC)  # the same on a replay
            command = command_for(routed, thought.reason, published, at)
            handled.emit(Output.of(self._topics.commands, ikey, command, headers))
        else:
            reply = reply_for(routed, thought.text)
            handled.emit(Output.of(self._topics.agent_replies, ikey, reply, headers))
        return handled

    async def _count(self, routed: RoutedMessage, thought: Thought, tool: bool) -> Thought:
        """Repeated failed clarification; anonymous users are not counted (no handoff)."""
        message = routed.message
        if message.user.external_id is None:
            return thought
        failed = isinstance(thought, Answer) and not thought.understood
        n = await self._store.step_failures(
            interaction_key(message), message.live_test, message.event_id,
            "fail" if failed else "reset",
        )  # fmt: skip
        return after_failures(thought, n, self._limit, tool)

    def _keeps_history(self, routed: RoutedMessage) -> bool:
        """Turns are kept for brains that want them; never for Live Test and anonymous users
        (R12: nothing of theirs is recorded)."""
        message = routed.message
        identified = message.user.external_id is not None
        return self._brain.wants_history and not message.live_test and identified

    async def _history(self, routed: RoutedMessage) -> tuple[tuple[str, str], ...]:
        """The agent's own recent turns of the interaction, from before this message."""
        if not self._keeps_history(routed):
            return ()
        message = routed.message
        turns = await self._store.turns_before(
            interaction_key(message), message.event_id, self._history_turns
        )
        return tuple(turns)

    async def _remember(self, routed: RoutedMessage, thought: Thought) -> None:
        """Records this message's turns for the next ones: what was said while a teammate had
        the user (R20's routing.context), the user's text and the agent's answer (none when
        it hands off: the user is with a person from here)."""
        if not self._keeps_history(routed):
            return
        message = routed.message
        context = routed.routing.context
        turns: list[tuple[Role, str]] = [(t.role, t.text) for t in context.turns] if context else []
        turns.append(("user", message.text))
        if isinstance(thought, Answer):
            turns.append(("ai", thought.text))
        await self._store.record_turns(interaction_key(message), message.event_id, turns)


def _outcome(thought: Thought) -> str:
    if isinstance(thought, Handoff):
        return "handoff"
    return "answered" if thought.understood else "not_understood"
