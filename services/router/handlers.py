"""Batch handlers of the router: chat.inbound (routing) and agent.replies (the reply gate).

Each handler turns one polled batch into the records to produce (and what to count once they
are committed); the TransactionalProcessor commits them with the batch's offsets. Redis is
asked once per batch (a pipeline).
"""

from __future__ import annotations

from collections import Counter as CountOf
from collections.abc import Sequence

import structlog

from schemas import AgentReply, UserMessage, interaction_key
from services.common import metrics, tracing
from services.common.kafka import MAX_OUTPUT_BYTES, Handled, Output, Record, decode
from services.common.settings import Topics
from services.handoff.domain.routing import GateRequest, RouteRequest
from services.handoff.state.reader import StateClient
from services.router.domain import (
    ai_turn,
    forwarded_reply,
    is_stateless,
    routed_record,
    user_turn_json,
)

log = structlog.get_logger()


def source_of(record: Record) -> str:
    return f"{record.topic}/{record.partition}/{record.offset}"


def route_request(record: Record, message: UserMessage) -> RouteRequest:
    stateless = is_stateless(message)
    return RouteRequest(
        ikey=interaction_key(message),
        event_id=message.event_id,
        src=source_of(record),
        turn_json="" if stateless else user_turn_json(message),
        stateless=stateless,
    )


class InboundRouter:
    def __init__(self, state: StateClient, topics: Topics) -> None:
        self._state = state
        self._topics = topics

    async def __call__(self, records: Sequence[Record]) -> Handled:
        started = tracing.now_ns()
        decoded = [(r, decode(r, UserMessage)) for r in records]
        messages = [(r, m) for r, m in decoded if isinstance(m, UserMessage)]
        requests = [route_request(r, m) for r, m in messages]
        decisions = await self._state.route_batch(requests) if requests else []
        answered = iter(zip(requests, decisions, strict=True))
        handled = Handled()
        routed: CountOf[str] = CountOf()  # per mode; counted once per batch (the hot path)
        duplicates = 0
        for record, item in decoded:
            if not isinstance(item, UserMessage):
                handled.dead_letter(self._topics.dead_letter, item)
                continue
            request, decision = next(answered)
            ikey = request.ikey
            if decision.status == "duplicate":
                duplicates += 1
                log.info("duplicate_dropped", interaction=ikey, event_id=item.event_id)
                continue
            human = decision.mode == "human"
            topic = self._topics.human_queue if human else self._topics.ai_requests
            room = MAX_OUTPUT_BYTES - len(ikey.encode())
            value = routed_record(record.value or b"", item, decision, room)
            headers = tracing.processed(record, started, {"handoff.mode": decision.mode})
            handled.emit(Output(topic, ikey, value, headers))
            routed[decision.mode] += 1
        for mode, n in routed.items():
            handled.count(metrics.MESSAGES_ROUTED.labels(mode=mode), n)
        if duplicates:
            handled.count(metrics.DUPLICATES.labels(topic=records[0].topic), duplicates)
        log.debug("batch_routed", records=len(records), **routed)
        return handled


class ReplyGate:
    def __init__(self, state: StateClient, topics: Topics) -> None:
        self._state = state
        self._topics = topics

    async def __call__(self, records: Sequence[Record]) -> Handled:
        started = tracing.now_ns()
        decoded = [(r, decode(r, AgentReply)) for r in records]
        replies = [(r, m) for r, m in decoded if isinstance(m, AgentReply)]
        requests = [
            GateRequest(
                ikey=interaction_key(m),
                reply_id=m.reply_id,
                in_reply_to=m.in_reply_to,
                src=source_of(r),
                state_version=m.state_version,
                turn_json=ai_turn(m, r.timestamp).model_dump_json(),
            )
            for r, m in replies
        ]
        verdicts = await self._state.gate_batch(requests) if requests else []
        answered = iter(zip(requests, verdicts, strict=True))
        handled = Handled()
        for record, item in decoded:
            if not isinstance(item, AgentReply):
                handled.dead_letter(self._topics.dead_letter, item)
                continue
            request, verdict = next(answered)
            ikey = request.ikey
            if verdict.status == "duplicate":
                handled.count(metrics.DUPLICATES.labels(topic=record.topic))
                continue
            headers = tracing.processed(record, started, {"handoff.verdict": verdict.verdict})
            if verdict.forwarded:
                reply = forwarded_reply(item, record.timestamp)
                handled.emit(Output.of(self._topics.outbound, ikey, reply, headers))
            if verdict.status == "decided":
                handled.count(metrics.REPLIES.labels(verdict=verdict.verdict))
                log.log(
                    20 if verdict.forwarded else 30,
                    "reply_gated",
                    interaction=ikey,
                    reply_id=item.reply_id,
                    in_reply_to=item.in_reply_to,
                    verdict=verdict.verdict,
                    reply_version=item.state_version,
                    current_version=verdict.current_version,
                )
        return handled
