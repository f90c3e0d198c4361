"""`python -m services.handoff.agents`: Apply and Publish agent versions from a terminal.

python -m services.handoff.agents apply --tenant acme --agent support --enabled --idle-timeout 30 \
    --queue default --queue billing --out-of-hours stay_with_ai
python -m services.handoff.agents publish --tenant acme --agent support --version 1
python -m services.handoff.agents show --tenant acme --agent support
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from schemas.events import Id
from services.handoff.api.models import HandoffSettingsBody
from services.handoff.domain.limits import IDLE_TIMEOUT_MINUTES
from services.handoff.domain.modes import DEFAULT_NOTICE, DEFAULT_RETURN_NOTICE, HandoffConfig
from services.handoff.settings import HandoffSettings
from services.handoff.state.store import ModeStore, UnknownVersionError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.handoff.agents")
    sub = parser.add_subparsers(dest="action", required=True)
    for name in ("apply", "publish", "show"):
        p = sub.add_parser(name)
        p.add_argument("--tenant", required=True)
        p.add_argument("--agent", required=True)
        if name == "apply":
            p.add_argument("--enabled", action="store_true", help="handoff enabled")
            p.add_argument(
                "--idle-timeout",
                type=int,
                default=None,
                help=f"minutes, {IDLE_TIMEOUT_MINUTES.min}-{IDLE_TIMEOUT_MINUTES.max}",
            )
            p.add_argument("--instructions", default="")
            p.add_argument("--notice", default=DEFAULT_NOTICE)
            p.add_argument(
                "--return-notice",
                default=DEFAULT_RETURN_NOTICE,
                help="what the user is told when the conversation returns to the AI",
            )
            p.add_argument(
                "--queue",
                action="append",
                default=[],
                dest="queues",
                help="a queue the agent may hand to (repeat; the first is the default)",
            )
            p.add_argument("--out-of-hours", choices=["queue", "stay_with_ai"], default="queue")
            p.add_argument(
                "--waiting-notice", default="", help="{position} {eta_minutes} {opens_at}"
            )
            p.add_argument(
                "--announce-teammate", action="store_true", help="tell the user who took it"
            )
            p.add_argument("--publish", action="store_true", help="publish it right away")
        if name == "publish":
            p.add_argument("--version", type=int, required=True)
    return parser


def validate_config(
    enabled: bool,
    idle: int | None,
    instructions: str,
    notice: str,
    return_notice: str = DEFAULT_RETURN_NOTICE,
    **more: Any,
) -> HandoffConfig:
    """The operator API's validation (HandoffSettingsBody): one set of rules for both.

    `more`: the other fields of the handoff block (queues, out_of_hours, ...)."""
    try:
        body = HandoffSettingsBody(
            enabled=enabled,
            idle_timeout_minutes=idle,
            instructions=instructions,
            notice_text=notice,
            return_notice_text=return_notice,
            **more,
        )
    except ValidationError as exc:
        raise ValueError(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from exc
    return body.to_config()


async def run(args: argparse.Namespace) -> int:
    store = ModeStore.from_settings(HandoffSettings())
    await store.load_functions()
    by = f"cli:{getpass.getuser()}"
    try:
        if args.action == "apply":
            config = validate_config(
                args.enabled,
                args.idle_timeout,
                args.instructions,
                args.notice,
                args.return_notice,
                queues=args.queues,
                out_of_hours=args.out_of_hours,
                waiting_notice_text=args.waiting_notice,
                announce_teammate=args.announce_teammate,
            )
            now = datetime.now(UTC).isoformat()
            n = await store.apply_agent_version(args.tenant, args.agent, config, now, by)
            print(f"applied version {n}")
            if args.publish:
                await store.publish_agent_version(args.tenant, args.agent, n, by)
                print(f"published version {n}")
        elif args.action == "publish":
            await store.publish_agent_version(args.tenant, args.agent, args.version, by)
            print(f"published version {args.version}")
        versions, published = await store.agent_versions(args.tenant, args.agent)
        if args.action == "show":
            doc = {"published": published, "versions": [asdict(v) for v in versions]}
            print(json.dumps(doc, indent=2))
        return 0
    finally:
        await store.close()


def main() -> int:
    args = _parser().parse_args()
    try:
        TypeAdapter(Id).validate_python(args.tenant)
        TypeAdapter(Id).validate_python(args.agent)
        return asyncio.run(run(args))
    except (ValueError, ValidationError, UnknownVersionError) as exc:
        print(f"error: {exc}")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
