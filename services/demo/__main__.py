"""`python -m services.demo` (`make demo`): the checklist paths against a running stack.

Reads the stack's settings from `.run/handoff.env` (written by `make run`) under the
HANDOFF_* environment. Exits 0 when every path passed, 1 when one failed, 2 when no stack runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from services.common.stackenv import RUN_ENV, stack_settings
from services.demo.checklist import REPLY_S, Demo, Outcome
from services.handoff.api.secret import resolve_secret
from services.handoff.api.token import make_token
from services.handoff.settings import HandoffSettings
from services.webchat.settings import WebchatSettings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m services.demo", description=__doc__)
    p.add_argument("--tenant", default="demo", help="the demo's tenant (default: demo)")
    p.add_argument("--agent", default="support", help="the demo's agent (default: support)")
    p.add_argument("--env-file", type=Path, default=RUN_ENV, help="the stack's settings file")
    return p


async def run(args: argparse.Namespace, console: Console) -> list[Outcome]:
    settings = stack_settings(WebchatSettings, args.env_file)
    handoff = stack_settings(HandoffSettings, args.env_file)

    def token(sub: str) -> str:  # a teammate of the demo's tenant, as `make token` makes one
        secret = resolve_secret(handoff.api_jwt_secret, handoff.api_jwt_secret_file)
        return make_token(secret, args.tenant, "editor", sub, 600)

    api_url = f"http://{handoff.http_host}:{handoff.handoff_http_port}"
    async with (
        httpx.AsyncClient(base_url=api_url, timeout=REPLY_S) as api,
        Demo(settings, args.tenant, args.agent, console, api, token) as demo,
    ):
        console.print(f"[bold]Handoff demo[/] on Kafka {settings.kafka_bootstrap}")
        console.print(f"   {await demo.publish_demo_version()}")
        console.print(f"   talking as {demo.ikey}")
        return await demo.run()


def summary(console: Console, outcomes: list[Outcome], took: float) -> None:
    table = Table(title=f"Checklist ({took:.0f} s)", title_justify="left")
    table.add_column("#")
    table.add_column("path")
    table.add_column("result")
    for o in outcomes:
        result = {True: "[green]PASSED[/]", False: "[red]FAILED[/]", None: "[yellow]SKIPPED[/]"}
        table.add_row(str(o.number), o.title, result[o.passed])
    console.print()
    console.print(table)


def main() -> int:
    args = _parser().parse_args()
    console = Console(highlight=False)
    if not args.env_file.is_file() and "HANDOFF_KAFKA_BOOTSTRAP" not in os.environ:
        console.print(
            f"[red]No running stack: {args.env_file} is missing.[/] Start `make run` in another "
            "terminal, wait for 'Handoff is running', then run `make demo` again."
        )
        return 2
    began = time.monotonic()
    outcomes = asyncio.run(run(args, console))
    summary(console, outcomes, time.monotonic() - began)
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
