"""`handoffctl chat`: a terminal chat as an end user.

Sends what you type as `UserMessage`s on chat.inbound (keyed by the interaction key) and shows
every `OutboundMessage` for you from chat.outbound: system notices, AI answers and a human
teammate's replies, each marked. In the chat, `/attach PATH` attaches a file to your next
message and `/quit` (or Ctrl-D) ends it. With `-m TEXT` (repeatable) it sends those messages
one by one, shows what comes back, and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from schemas import Attachment, EndUser, InteractionIds, OutboundMessage, UserMessage
from schemas import interaction_key as key_of
from services.cli import live
from services.common import tracing
from services.common.aiokafka_edge import idempotent_producer, send_idempotent
from services.common.follow import Follower
from services.common.kafka import Output
from services.webchat.settings import WebchatSettings


class Session:
    """One end user's conversation with one agent."""

    def __init__(self, s: WebchatSettings, ids: InteractionIds, live_test: bool) -> None:
        self.settings = s
        self.ids = ids
        self.ikey = key_of(ids)
        self.live_test = live_test
        self.conversation = f"c-{uuid.uuid4().hex[:12]}"
        self.console = Console(highlight=False)
        self.follower = Follower(s, [s.topics.outbound], s.consumer_poll_ms)
        self.producer = idempotent_producer(s)
        self.arrived: asyncio.Queue[OutboundMessage] = asyncio.Queue()

    async def __aenter__(self) -> Session:
        await self.follower.start()
        await self.producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.producer.stop()
        await self.follower.stop()

    async def listen(self) -> None:
        while True:
            for record in await self.follower.poll():
                if record.key is None or record.key.decode("utf-8", "replace") != self.ikey:
                    continue
                try:
                    message = OutboundMessage.model_validate_json(record.value or b"")
                except ValueError:
                    continue
                live.show(
                    self.console, message.sender, message.text, message.attachments, message.sent_at
                )
                self.arrived.put_nowait(message)

    async def send(self, text: str, attachments: list[Attachment]) -> UserMessage:
        message = UserMessage(
            **self.ids.model_dump(),
            event_id=str(uuid.uuid4()),
            conversation_id=self.conversation,
            live_test=self.live_test,
            text=text,
            attachments=attachments,
            sent_at=datetime.now(UTC),
        )
        topic = self.settings.topics.inbound
        with tracing.sending(topic) as span:  # a channel starts the message's trace
            output = Output.of(topic, self.ikey, message, tracing.inject(span))
            await send_idempotent(self.producer, [output])
        return message

    async def answer_to(self, message: UserMessage, wait: float) -> None:
        """Waits (at most `wait` s) for the AI's answer to `message` or a system notice."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (left := deadline - loop.time()) > 0:
            try:
                got = await asyncio.wait_for(self.arrived.get(), left)
            except TimeoutError:
                break
            if got.in_reply_to == message.event_id or got.sender == "system":
                return


async def _scripted(
    session: Session, texts: list[str], files: list[Attachment], wait: float
) -> None:
    for text in texts:
        message = await session.send(text, files)
        live.show(session.console, "user", text, files)
        files = []
        await session.answer_to(message, wait)


async def _interactive(session: Session, files: list[Attachment]) -> None:
    s, console = session.settings, session.console
    lines = live.lines_from_stdin(asyncio.get_running_loop())
    while (line := await lines.get()) is not None:
        line = line.strip()
        if line in ("/quit", "/exit"):
            break
        if line.startswith("/attach "):
            name = line.removeprefix("/attach ").strip()
            attachment = await asyncio.to_thread(live.store_file, s, name)
            if attachment is None:
                console.print(f"[red]no such file: {name}[/]")
            else:
                files.append(attachment)
                console.print(f"[dim]attached {attachment.name} to your next message[/]")
            continue
        if not line and not files:
            continue
        await session.send(line, files)
        if files:
            console.print(f"[dim]sent with {len(files)} file(s)[/]")
        files = []


async def _run(
    ids: InteractionIds,
    live_test: bool,
    paths: list[Path],
    texts: list[str],
    wait: float,
) -> None:
    s = live.settings()
    tracing.configure(s, "chat-cli")
    async with Session(s, ids, live_test) as session:
        files = live.store_files(s, paths)
        user = ids.user.external_id
        mode = " [magenta](Live Test)[/]" if live_test else ""
        hint = "" if texts else " — type a message; /attach PATH, /quit or Ctrl-D to end"
        session.console.print(
            f"[bold]{user}[/] chatting with [bold]{ids.tenant_id}/{ids.agent_id}[/] on "
            f"{ids.user.channel}{mode}{hint}"
        )
        listener = asyncio.create_task(session.listen())
        try:
            if texts:
                await _scripted(session, texts, files, wait)
            else:
                await _interactive(session, files)
        finally:
            listener.cancel()


def chat(
    tenant: Annotated[str, typer.Option(help="the tenant")] = "acme",
    agent: Annotated[str, typer.Option(help="the agent to talk to")] = "support",
    channel: Annotated[str, typer.Option(help="the channel you are on")] = "web",
    user: Annotated[
        str | None, typer.Option(help="your external id on the channel (default: your login)")
    ] = None,
    attach: Annotated[
        list[Path] | None,
        typer.Option("--attach", exists=True, dir_okay=False, help="a file for the first message"),
    ] = None,
    live_test: Annotated[
        bool, typer.Option("--live-test", help="mark messages as the editor's Live Test")
    ] = False,
    message: Annotated[
        list[str] | None,
        typer.Option("--message", "-m", help="send this (repeatable), show the answers, exit"),
    ] = None,
    wait: Annotated[
        float, typer.Option(help="with -m: seconds to wait for the answer to each message")
    ] = 15.0,
) -> None:
    """Chat with an agent as an end user: system, AI and human messages marked."""
    user = user or getpass.getuser()
    live.check_ids(tenant=tenant, agent=agent, channel=channel, user=user)
    ids = InteractionIds(
        tenant_id=tenant, agent_id=agent, user=EndUser(channel=channel, external_id=user)
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(ids, live_test, list(attach or []), list(message or []), wait))
