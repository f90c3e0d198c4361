"""`handoffctl dlq ls | show | redrive`: what is in the dead-letter topic, and sending it back.

Redrive produces a dead letter's original bytes (or a fixed version of them) to its source
topic with its original key. Each dead letter is redriven once: the redrive is recorded in
Redis, and a second one is refused unless --force. Even forced, a redriven user message that
was already routed is not routed again: the router drops a repeated event_id (R10).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from services.cli.reading import Rec, read_topics, since_option
from services.common.aiokafka_edge import idempotent_producer
from services.common.settings import CommonSettings
from services.handoff.state.reader import StateClient

app = typer.Typer(
    help="Dead letters: list them, look at one, send them back.", no_args_is_help=True
)
console = Console(highlight=False)


def _position(text: str) -> tuple[int, int]:
    try:
        partition, offset = text.split(":")
        return int(partition), int(offset)
    except ValueError as exc:
        raise typer.BadParameter(f"want PARTITION:OFFSET, got {text!r}") from exc


async def _letters(settings: CommonSettings, since: str | None) -> list[Rec]:
    since_ms = since_option(since)
    topic = settings.topics.dead_letter
    with console.status(f"reading {topic}…"):  # shown on a terminal only
        return [r async for r in read_topics(settings, [topic], since_ms) if r.value]


def _raw(letter: dict[str, Any]) -> bytes:
    return base64.b64decode(letter.get("raw", ""))


@app.command("ls")
def ls(
    since: Annotated[str | None, typer.Option(help="15m, 2h, 1d or ISO")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Dead letters grouped by error kind and source topic."""
    letters = asyncio.run(_letters(CommonSettings(), since))
    groups: dict[tuple[str, str], list[Rec]] = defaultdict(list)
    for rec in letters:
        assert rec.value is not None
        groups[(rec.value["error"]["kind"], rec.value["source_topic"])].append(rec)
    rows = [
        {
            "kind": kind,
            "source_topic": source,
            "count": len(recs),
            "first": f"{recs[0].partition}:{recs[0].offset}",
            "last": f"{recs[-1].partition}:{recs[-1].offset}",
            "example": (recs[-1].value or {})["error"]["detail"][:80],
        }
        for (kind, source), recs in sorted(groups.items())
    ]
    if json_out:
        print(json.dumps(rows))
        return
    table = Table("kind", "source topic", "count", "first", "last", "latest detail")
    for row in rows:
        table.add_row(
            *(str(row[k]) for k in ("kind", "source_topic", "count", "first", "last", "example"))
        )
    console.print(table)
    console.print(f"[dim]{len(letters)} dead letter(s)[/]")


@app.command("show")
def show(
    position: Annotated[str, typer.Argument(help="PARTITION:OFFSET in the dead-letter topic")],
) -> None:
    """One dead letter in full, its original bytes as text when they are UTF-8."""
    partition, offset = _position(position)
    letters = asyncio.run(_letters(CommonSettings(), None))
    found = [r for r in letters if (r.partition, r.offset) == (partition, offset)]
    if not found:
        console.print(f"[red]no dead letter at {position}[/]")
        raise typer.Exit(1)
    letter = dict(found[0].value or {})
    raw = _raw(letter)
    try:
        letter["raw_text"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        letter["raw_text"] = None
    print(json.dumps(letter, indent=2))


@app.command("redrive")
def redrive(
    kind: Annotated[str | None, typer.Option(help="only this error kind")] = None,
    source: Annotated[str | None, typer.Option(help="only from this source topic")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="first PARTITION:OFFSET")] = None,
    to: Annotated[str | None, typer.Option(help="last PARTITION:OFFSET (same partition)")] = None,
    at: Annotated[str | None, typer.Option(help="exactly this PARTITION:OFFSET")] = None,
    value_file: Annotated[
        Path | None, typer.Option(help="fixed bytes to send instead (with --at)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    force: Annotated[bool, typer.Option("--force", help="redrive again what was redriven")] = False,
) -> None:
    """Send selected dead letters back to their source topic, each once."""
    if value_file is not None and at is None:
        raise typer.BadParameter("--value-file replaces one record: give --at too")
    settings = CommonSettings()

    at_pos = _position(at) if at else None
    first = _position(from_) if from_ else None
    last = _position(to) if to else None

    def selected(rec: Rec) -> bool:
        v = rec.value or {}
        where = (rec.partition, rec.offset)
        in_range = (
            (at_pos is None or where == at_pos)
            and (first is None or (where[0] == first[0] and where[1] >= first[1]))
            and (last is None or (where[0] == last[0] and where[1] <= last[1]))
        )
        return (
            in_range
            and (kind is None or v["error"]["kind"] == kind)
            and (source is None or v["source_topic"] == source)
        )

    async def run() -> tuple[int, int]:
        chosen = [r for r in await _letters(settings, None) if selected(r)]
        if dry_run:
            for rec in chosen:
                target = (rec.value or {})["source_topic"]
                console.print(f"would redrive {rec.partition}:{rec.offset} → {target}")
            return len(chosen), 0
        state = StateClient.from_settings(settings)
        producer = idempotent_producer(settings)
        await producer.start()
        sent = skipped = 0
        try:
            for rec in chosen:
                letter = rec.value or {}
                if letter.get("raw_truncated") and value_file is None:
                    # Only the value's start is here: sending it would make a new bad record.
                    console.print(
                        f"{rec.partition}:{rec.offset} not redriven: its raw is cut; the whole"
                        f" record is {letter['source_topic']} {letter['partition']}:"
                        f"{letter['offset']} (fix it, then --at with --value-file)"
                    )
                    continue
                mark = f"{rec.partition}:{rec.offset}"
                ledger = f"ho:dlq-redriven:{settings.topics.dead_letter}"
                if not await state.redis.hsetnx(ledger, mark, str(time.time())) and not force:
                    skipped += 1
                    continue
                value = value_file.read_bytes() if value_file is not None else _raw(letter)
                key = letter.get("key")
                await producer.send_and_wait(
                    letter["source_topic"], value, key=key.encode() if key else None
                )
                sent += 1
        finally:
            await producer.stop()
            await state.close()
        return sent, skipped

    sent, skipped = asyncio.run(run())
    verb = "would redrive" if dry_run else "redriven"
    console.print(
        f"{sent} {verb}"
        + (f", {skipped} skipped (already redriven; --force to repeat)" if skipped else "")
    )
    if sent == 0 and not dry_run:
        raise typer.Exit(1)
