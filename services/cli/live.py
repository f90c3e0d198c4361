"""What `handoffctl chat` and `handoffctl desk` share: the running stack's settings, the
uploaded-files folder, typed input beside live output, and messages with the sender marked.

Both read `.run/handoff.env` (written by `make run`) under the HANDOFF_* environment, so they
reach the stack's Kafka and Redis and store attachments where the web chat gateway serves
them (`{webchat_base_url}/files/<id>/<name>`).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import typer
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.markup import escape

from schemas import Attachment
from schemas.events import ExternalId, Id
from services.common.files import FileStore
from services.common.stackenv import stack_settings
from services.webchat.settings import WebchatSettings

# sender -> (label, style): system notices, the AI, a human teammate, the end user.
SENDERS = {
    "system": ("notice", "bold yellow"),
    "ai": ("AI", "bold blue"),
    "human": ("human", "bold green"),
    "user": ("you", "bold cyan"),
}
# The desk's view: the end user is "user", not "you".
DESK_SENDERS = {**SENDERS, "user": ("user", "bold cyan")}


def settings() -> WebchatSettings:
    return stack_settings(WebchatSettings)


def file_store(s: WebchatSettings) -> FileStore:
    return FileStore(s.webchat_data_dir.resolve(), s.webchat_base_url)


def store_files(s: WebchatSettings, paths: Sequence[Path]) -> list[Attachment]:
    files = file_store(s)
    return [files.save_path(p) for p in paths]


def store_file(s: WebchatSettings, name: str) -> Attachment | None:
    """The file named by `/attach NAME`, stored; None when there is no such file."""
    path = Path(name).expanduser()
    return file_store(s).save_path(path) if path.is_file() else None


def check_ids(**ids: str | None) -> None:
    """Exits with a clear message when an id is not the contract's."""
    for name, value in ids.items():
        adapter = TypeAdapter(ExternalId if name == "user" else Id)
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            message = f"{value!r}: {exc.errors()[0]['msg']}"
            raise typer.BadParameter(message, param_hint=name) from None


def show(
    console: Console,
    sender: str,
    text: str,
    attachments: Sequence[Attachment] = (),
    at: datetime | None = None,
    who: str = "",
    senders: dict[str, tuple[str, str]] = SENDERS,
) -> None:
    label, style = senders.get(sender, (sender, "bold"))
    when = (at.astimezone() if at else datetime.now().astimezone()).strftime("%H:%M:%S")
    head = f"[dim]{when}[/] [{style}]{escape(label):<6}[/]"
    if who:
        head += f" [dim]{escape(who)}[/]"
    console.print(f"{head} {escape(text)}" if text else head, highlight=False)
    for a in attachments:
        console.print(
            f"{'':16}[dim]📎[/] {escape(a.name)} [dim]({a.content_type}, {a.size} B)[/] "
            f"[link={a.url}]{escape(a.url)}[/link]",
            highlight=False,
        )


def lines_from_stdin(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Typed lines, read by a daemon thread (so Ctrl-C never waits for Enter); None at EOF."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\n"))
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="stdin", daemon=True).start()
    return queue
