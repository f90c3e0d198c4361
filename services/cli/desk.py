"""`handoffctl desk`: the human desk from a terminal.

`desk watch` shows the human queue live: each `HandoffTicket` (reason, who handed off, the
transcript) and each user message routed in human mode (attachments included), the desks'
replies, and the returns to AI; with `--tenant` it first lists the tenant's open tickets.
`desk reply` sends a human teammate's `OutboundMessage` (sender `human`) on chat.outbound, with
its audit record (`OperatorAction`, `via: handoffctl`, actor `--as`) on handoff.events, and
records the turn in the interaction's transcript. Both speak Kafka and Redis directly, as ops
tools do; the console uses the operator API (and its audit) instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape

from schemas import (
    EndUser,
    HandoffTicket,
    InteractionIds,
    ModeChanged,
    OperatorAction,
    OutboundMessage,
    RoutedMessage,
    interaction_key,
    parse_interaction_key,
)
from services.cli import live
from services.cli.mode import default_actor
from services.common import tracing
from services.common.aiokafka_edge import idempotent_producer, send_idempotent
from services.common.follow import Follower
from services.common.kafka import Output
from services.handoff.domain.events import outbound_turn
from services.handoff.state.store import HumanReply, ModeStore

app = typer.Typer(
    help="The human desk from a terminal: watch the human queue, reply to users.",
    no_args_is_help=True,
)
_MODELS: dict[str, type[BaseModel]] = {
    "handoff_ticket": HandoffTicket,
    "routed_message": RoutedMessage,
    "mode_changed": ModeChanged,
    "outbound_message": OutboundMessage,
}


def parse(value: bytes | None) -> BaseModel | None:
    """A ticket, a routed message or a mode change; None for anything else."""
    try:
        data = json.loads(value or b"")
    except ValueError:
        return None
    model = _MODELS.get(str(data.get("type"))) if isinstance(data, dict) else None
    try:
        return model.model_validate(data) if model else None
    except ValidationError:
        return None


def _reply_hint(ids: InteractionIds) -> str:
    return (
        f"handoffctl desk reply --tenant {ids.tenant_id} --agent {ids.agent_id} "
        f"--channel {ids.user.channel} --user {ids.user.external_id} TEXT"
    )


def show_ticket(console: Console, ticket: HandoffTicket) -> None:
    expires = ticket.expires_at.astimezone().strftime("%H:%M:%S") if ticket.expires_at else "never"
    console.rule(f"[bold magenta]ticket[/] {escape(interaction_key(ticket))}", align="left")
    console.print(
        f"[bold]reason[/] {escape(ticket.reason)}\n"
        f"[dim]by {escape(ticket.actor)} ({ticket.cause}), human mode expires: {expires}[/]",
        highlight=False,
    )
    for turn in ticket.transcript:
        sender = "user" if turn.role == "user" else turn.role
        who = (ticket.user.external_id or "") if turn.role == "user" else ""
        live.show(console, sender, turn.text, turn.attachments, turn.at, who, live.DESK_SENDERS)
    console.print(f"[dim]reply: {escape(_reply_hint(ticket))}[/]", highlight=False)


def show_item(console: Console, item: BaseModel, tenant: str | None, agent: str | None) -> None:
    ids = item.message if isinstance(item, RoutedMessage) else item
    if not isinstance(ids, InteractionIds):
        return
    if (tenant and ids.tenant_id != tenant) or (agent and ids.agent_id != agent):
        return
    if isinstance(item, HandoffTicket):
        show_ticket(console, item)
    elif isinstance(item, RoutedMessage) and item.routing.mode == "human":
        m = item.message
        who = interaction_key(m)
        live.show(console, "user", m.text, m.attachments, m.sent_at, who, live.DESK_SENDERS)
    elif isinstance(item, OutboundMessage) and item.sender == "human":
        who = interaction_key(item)
        live.show(console, "human", item.text, item.attachments, item.sent_at, who)
    elif isinstance(item, ModeChanged) and item.to_mode == "ai":
        console.print(
            f"[dim]{item.changed_at.astimezone():%H:%M:%S}[/] [bold blue]back to AI[/] "
            f"{escape(interaction_key(item))} [dim]({item.cause}: {escape(item.reason)})[/]",
            highlight=False,
        )


async def _open_tickets(console: Console, tenant: str, agent: str | None) -> None:
    store = ModeStore.from_settings(live.settings())
    try:
        found = await store.desk_open_tickets(tenant, 50)
    finally:
        await store.close()
    # The same filter as the live items below: --agent names whose tickets are shown.
    found = [f for f in found if agent is None or parse_interaction_key(f[0]).agent_id == agent]
    if not found:
        console.print(f"[dim]no open tickets for {tenant}{f' and {agent}' if agent else ''}[/]")
    for ikey, opened_ms, state in found:
        opened = datetime.fromtimestamp(opened_ms / 1000).strftime("%H:%M:%S")
        console.print(
            f"[magenta]open[/] {escape(ikey)} [dim]since {opened}, {escape(state.actor)}:[/] "
            f"{escape(state.reason)}",
            highlight=False,
        )


async def _watch(tenant: str | None, agent: str | None, duration: float | None) -> None:
    s = live.settings()
    console = Console(highlight=False)
    topics = [s.topics.human_queue, s.topics.events, s.topics.outbound]
    follower = Follower(s, topics)
    await follower.start()
    try:
        if tenant:
            await _open_tickets(console, tenant, agent)
        console.print(f"[dim]watching the human queue{f' of {tenant}' if tenant else ''}…[/]")
        loop = asyncio.get_running_loop()
        end = loop.time() + duration if duration else None
        while end is None or loop.time() < end:
            for record in await follower.poll(200):
                item = parse(record.value)
                if item is not None:
                    show_item(console, item, tenant, agent)
    finally:
        await follower.stop()


@app.command()
def watch(
    tenant: Annotated[str | None, typer.Option(help="only this tenant")] = None,
    agent: Annotated[str | None, typer.Option(help="only this agent")] = None,
    duration: Annotated[
        float | None, typer.Option("--for", help="stop after this many seconds")
    ] = None,
) -> None:
    """Show the human queue live: tickets with reason and transcript, user messages."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_watch(tenant, agent, duration))


def _audit(ids: InteractionIds, actor: str, message: OutboundMessage) -> OperatorAction:
    """The reply's audit record: a terminal has no token, so no role; `via` says where."""
    return OperatorAction(
        event_id=str(uuid.uuid4()),
        tenant_id=ids.tenant_id,
        actor=actor,
        action="desk_reply",
        target=interaction_key(ids),
        outcome="sent",
        command_id=message.event_id,
        via="handoffctl",
        at=message.sent_at,
    )


async def _reply(ids: InteractionIds, text: str, paths: list[Path], force: bool, actor: str) -> str:
    s = live.settings()
    tracing.configure(s, "desk-cli")
    ikey = interaction_key(ids)
    store = ModeStore.from_settings(s)
    producer = idempotent_producer(s)
    try:
        user = ids.user.external_id or ""
        if not await store.has_user_agent(ids.tenant_id, ids.user.channel, user, ids.agent_id):
            raise typer.BadParameter(
                f"{user} has never written to {ids.agent_id} on {ids.user.channel} "
                f"(tenant {ids.tenant_id}): check the user id",
                param_hint="user",
            )
        state = await store.read_state(ikey)
        if state.mode != "human" and not force:
            raise typer.BadParameter(
                "the AI has this conversation (mode ai); an operator switches it to human "
                "first, or use --force",
                param_hint="user",
            )
        turns: list[dict[str, Any]] = await store.transcript(ikey, 20)
        conversation = next(
            (t["conversation_id"] for t in reversed(turns) if t.get("conversation_id")), None
        )
        message = OutboundMessage(
            **ids.model_dump(),
            event_id=str(uuid.uuid4()),
            conversation_id=conversation,
            sender="human",
            text=text,
            attachments=live.store_files(s, paths),
            sent_at=datetime.now(UTC),
        )
        await producer.start()
        # A person's answer, in the trace of what the desk was given last (as the API's).
        parent = tracing.extract(await store.latest_trace(ikey))
        with tracing.sending(s.topics.outbound, parent, {"handoff.sender": "human"}) as span:
            headers = tracing.inject(span)
            await send_idempotent(
                producer,
                [
                    Output.of(s.topics.outbound, ikey, message, headers),
                    Output.of(s.topics.events, ikey, _audit(ids, actor, message), headers),
                ],
            )
        # Recorded (and counted as activity, R19) at once; the handoff service's consumer of
        # chat.outbound would record it too, and skips it by its event_id.
        turn = outbound_turn(message).model_dump_json()
        await store.human_reply(HumanReply(ikey, message.event_id, f"cli/{message.event_id}", turn))
        return message.event_id
    finally:
        await producer.stop()
        await store.close()


@app.command()
def reply(
    text: Annotated[str, typer.Argument(help="what the human teammate says")],
    user: Annotated[str, typer.Option(help="the end user's external id")],
    tenant: Annotated[str, typer.Option(help="the tenant")] = "acme",
    agent: Annotated[str, typer.Option(help="the agent the user talks to")] = "support",
    channel: Annotated[str, typer.Option(help="the user's channel")] = "web",
    attach: Annotated[
        list[Path] | None, typer.Option("--attach", exists=True, dir_okay=False, help="a file")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="send even if the AI has the conversation")
    ] = False,
    actor: Annotated[
        str | None, typer.Option("--as", help="who replies, audited (default operator:$USER)")
    ] = None,
) -> None:
    """Reply to a user in human mode as a human teammate (sender `human`)."""
    live.check_ids(tenant=tenant, agent=agent, channel=channel, user=user)
    ids = InteractionIds(
        tenant_id=tenant, agent_id=agent, user=EndUser(channel=channel, external_id=user)
    )
    who = actor or default_actor()
    event_id = asyncio.run(_reply(ids, text, list(attach or []), force, who))
    Console(highlight=False).print(f"sent {event_id} to {interaction_key(ids)}")
