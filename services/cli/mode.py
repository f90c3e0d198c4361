"""`handoffctl mode set`: an operator's mode switch from a terminal (R7, R22).

Ops tools act as operators through handoff.operator-commands, never handoff.commands (which
grants agent authority only). The handoff service runs the command like the API's switch,
audits it (an `OperatorAction` with `via` the topic) and the history names `--as`. Writing
that topic is operator authority over every tenant: the deployment's ACLs give it to the ops
tools' and the API's principals only (SECURITY.md). The command waits for the outcome on
handoff.events and exits 1 when the switch is rejected.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from schemas import EndUser, HandoffCommand, interaction_key
from services.cli import live
from services.common.aiokafka_edge import idempotent_producer, send_idempotent
from services.common.follow import Follower
from services.common.kafka import Output
from services.common.settings import CommonSettings
from services.handoff.domain.limits import REASON_CHARS, SWITCH_IDLE_TIMEOUT_MINUTES

app = typer.Typer(help="An interaction's mode, as an operator.", no_args_is_help=True)
OUTCOMES = ("mode_changed", "command_rejected")


def default_actor() -> str:
    return f"operator:{getpass.getuser()}"


async def _switch(s: CommonSettings, command: HandoffCommand, wait_s: float) -> dict[str, Any]:
    """Sends the command and returns its ModeChanged or CommandRejected."""
    follower = Follower(s, [s.topics.events], s.consumer_poll_ms)
    await follower.start()  # at the end of handoff.events before the command goes out
    producer = idempotent_producer(s)
    try:
        await producer.start()
        output = Output.of(s.topics.operator_commands, interaction_key(command), command)
        await send_idempotent(producer, [output])
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            for record in await follower.poll(500):
                value = json.loads(record.value or b"{}")
                if value.get("command_id") == command.command_id and value.get("type") in OUTCOMES:
                    return dict(value)
        raise typer.Exit(_no_outcome(command, wait_s))
    finally:
        await producer.stop()
        await follower.stop()


def _no_outcome(command: HandoffCommand, wait_s: float) -> int:
    Console(stderr=True).print(
        f"sent {command.command_id}, but no outcome on handoff.events within {wait_s:.0f} s: "
        "is the handoff service running?"
    )
    return 1


def check_switch(reason: str, idle_timeout: int | None) -> None:
    """The switch's own bounds (domain/limits.py), said as a bad argument of its option."""
    bound = SWITCH_IDLE_TIMEOUT_MINUTES
    if idle_timeout is not None and idle_timeout not in bound:
        raise typer.BadParameter(
            f"must be {bound.min}-{bound.max} minutes (0 = no idle timeout)",
            param_hint="--idle-timeout",
        )
    if not reason.strip():
        raise typer.BadParameter("say why, in one sentence", param_hint="--reason")
    if len(reason) > REASON_CHARS:
        raise typer.BadParameter(
            f"at most {REASON_CHARS} characters (this one has {len(reason)})",
            param_hint="--reason",
        )


@app.command("set")
def set_mode(
    mode: Annotated[str, typer.Argument(help="human or ai")],
    user: Annotated[str, typer.Option(help="the end user's external id")],
    reason: Annotated[str, typer.Option(help="why, in one sentence (kept in the history)")],
    tenant: Annotated[str, typer.Option(help="the tenant")] = "acme",
    agent: Annotated[str, typer.Option(help="the agent")] = "support",
    channel: Annotated[str, typer.Option(help="the user's channel")] = "web",
    actor: Annotated[
        str | None, typer.Option("--as", help="who is switching (default operator:$USER)")
    ] = None,
    idle_timeout: Annotated[
        int | None,
        typer.Option(help="human only: idle timeout in minutes, 0 = none (default: published)"),
    ] = None,
    wait: Annotated[float, typer.Option(help="seconds to wait for the outcome")] = 30.0,
) -> None:
    """Switch an interaction to human or back to AI, on handoff.operator-commands."""
    if mode not in ("human", "ai"):
        raise typer.BadParameter("must be human or ai", param_hint="mode")
    if idle_timeout is not None and mode != "human":
        raise typer.BadParameter("only for a switch to human", param_hint="--idle-timeout")
    live.check_ids(tenant=tenant, agent=agent, channel=channel, user=user)
    check_switch(reason, idle_timeout)
    command = HandoffCommand(
        tenant_id=tenant,
        agent_id=agent,
        user=EndUser(channel=channel, external_id=user),
        command_id=f"ctl-{uuid.uuid4()}",
        action="to_human" if mode == "human" else "to_ai",
        source="operator",
        actor=actor or default_actor(),
        reason=reason,
        idle_timeout_minutes=idle_timeout,
        requested_at=datetime.now(UTC),
    )
    outcome = asyncio.run(_switch(live.settings(), command, wait))
    console = Console(highlight=False)
    if outcome["type"] == "command_rejected":
        console.print(f"rejected: {outcome['code']}: {outcome['detail']}")
        raise typer.Exit(1)
    console.print(
        f"accepted: {outcome['from_mode']} → {outcome['to_mode']} by {outcome['actor']} "
        f"(state version {outcome['state_version']}, command {command.command_id})"
    )
