"""The `handoffctl` command. Each command group lives in its own module of this package and
is registered here; all of them read the same HANDOFF_* settings as the services."""

from __future__ import annotations

import typer

from services.cli import chat, desk, dlq, mode, replay, state, tail, trace

app = typer.Typer(
    name="handoffctl",
    help="Handoff from a terminal: chat as a user, answer as a desk, inspect and repair topics.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def handoffctl() -> None:
    """Handoff from a terminal: chat as a user, answer as a desk, inspect and repair topics."""


app.command("tail")(tail.tail)
app.command("trace")(trace.trace)
app.command("replay")(replay.replay)
app.add_typer(dlq.app, name="dlq")
app.add_typer(state.app, name="state")
app.command("chat")(chat.chat)
app.add_typer(desk.app, name="desk")
app.add_typer(mode.app, name="mode")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
