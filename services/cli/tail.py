"""`handoffctl tail TOPIC`: decoded records of a topic, filtered, optionally followed."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from services.cli.reading import Rec, read_topics, resolve_topic, since_option
from services.cli.render import as_json, line
from services.common.settings import CommonSettings


def matches(rec: Rec, key: str | None, tenant: str | None, type_: str | None) -> bool:
    if key is not None and rec.key != key:
        return False
    if tenant is not None:
        owner = (rec.value or {}).get("tenant_id") or (rec.key or "").split(":", 1)[0]
        if owner != tenant:
            return False
    return type_ is None or rec.type == type_


def tail(
    topic: Annotated[str, typer.Argument(help="e.g. chat.inbound (the prefix is added)")],
    key: Annotated[str | None, typer.Option(help="only this interaction key")] = None,
    tenant: Annotated[str | None, typer.Option(help="only this tenant")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="only this event type")] = None,
    since: Annotated[str | None, typer.Option(help="15m, 2h, 1d or an ISO time")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep waiting")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
) -> None:
    """Decoded records with partition, offset and time; undecodable ones shown raw."""
    settings = CommonSettings()
    console = Console(highlight=False)
    since_ms = since_option(since)

    async def run() -> int:
        shown = 0
        async for rec in read_topics(
            settings, [resolve_topic(settings, topic)], since_ms, follow=follow
        ):
            if matches(rec, key, tenant, type_):
                shown += 1
                print(as_json(rec)) if json_out else console.print(line(rec))
        return shown

    try:
        shown = asyncio.run(run())
    except LookupError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        return
    if not json_out:
        console.print(f"[dim]{shown} record(s)[/]")
