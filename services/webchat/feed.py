"""chat.outbound, fanned out to the open pages of each end user, and a nudge on each
handoff.events ticket change of theirs (someone claimed, released, transferred their ticket:
who answers changed, and the page asks /api/conversation again).

One consumer per gateway instance, outside any group (every instance sees every partition),
read_committed, from the end: a page sees the messages sent while it is open. Each open
page (an SSE stream) subscribes to its interaction key with a bounded queue; a page too slow
to drain it is disconnected, and reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import structlog
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from schemas import OutboundMessage, TicketChanged, UserMessage, interaction_key
from services.common import tracing
from services.common.aiokafka_edge import idempotent_producer, send_idempotent
from services.common.follow import Follower
from services.common.kafka import Output
from services.webchat.settings import WebchatSettings

log = structlog.get_logger()


ANSWERING = "answering"  # a page's nudge: who answers may have changed


@dataclass(eq=False)
class Page:
    ikey: str
    queue: asyncio.Queue[OutboundMessage | str | None]
    dropped: bool = field(default=False)


class OutboundFeed:
    """A worker of the gateway (services/common/service.py)."""

    def __init__(self, settings: WebchatSettings) -> None:
        self._settings = settings
        self._follower = Follower(
            settings, [settings.topics.outbound, settings.topics.events], settings.consumer_poll_ms
        )
        self._events_topic = settings.topics.events
        self._pages: dict[str, set[Page]] = {}
        self.healthy = False

    def open(self, ikey: str) -> Page:
        page = Page(ikey, asyncio.Queue(self._settings.webchat_client_buffer))
        self._pages.setdefault(ikey, set()).add(page)
        return page

    def close(self, page: Page) -> None:
        pages = self._pages.get(page.ikey, set())
        pages.discard(page)
        if not pages:
            self._pages.pop(page.ikey, None)

    def deliver(self, ikey: str, message: OutboundMessage | str) -> None:
        for page in list(self._pages.get(ikey, ())):
            try:
                page.queue.put_nowait(message)
            except asyncio.QueueFull:
                log.warning("webchat_page_too_slow", interaction=page.ikey)
                page.dropped = True
                self.close(page)

    async def start(self) -> None:
        await self._follower.start()
        self.healthy = True

    async def run(self) -> None:
        while True:
            for record in await self._follower.poll():
                if record.topic == self._events_topic:
                    self._nudge(record.value or b"")
                    continue
                try:
                    message = OutboundMessage.model_validate_json(record.value or b"")
                except ValidationError:
                    continue  # not ours to dead-letter: the gateway only delivers
                self.deliver(interaction_key(message), message)

    def _nudge(self, value: bytes) -> None:
        if b'"ticket_changed"' not in value or not self._pages:
            return  # most events are not ticket changes: skip decoding them
        try:
            change = TicketChanged.model_validate_json(value)
        except ValidationError:
            return
        self.deliver(interaction_key(change), ANSWERING)

    async def stop(self) -> None:
        self.healthy = False
        for pages in list(self._pages.values()):
            for page in list(pages):
                page.dropped = True
                with contextlib.suppress(asyncio.QueueFull):
                    page.queue.put_nowait(None)
        await self._follower.stop()


class Inbound:
    """Produces the pages' UserMessages on chat.inbound (idempotent producer, acks=all)."""

    def __init__(self, settings: WebchatSettings) -> None:
        self._topic = settings.topics.inbound
        self._producer: AIOKafkaProducer = idempotent_producer(settings)
        self.healthy = False

    async def start(self) -> None:
        await self._producer.start()
        self.healthy = True

    async def run(self) -> None:
        await asyncio.Event().wait()  # nothing to loop over: sends happen per request

    async def stop(self) -> None:
        self.healthy = False
        await self._producer.stop()

    async def send(self, message: UserMessage) -> None:
        """Sends `message`, starting its trace (tracing.py): one user message, one trace."""
        with tracing.sending(self._topic) as span:
            output = Output.of(self._topic, interaction_key(message), message, tracing.inject(span))
            await send_idempotent(self._producer, [output])
