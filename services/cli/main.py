"""The `handoffctl` command. Each command group lives in its own module of this package and
is registered here; all of them read the same HANDOFF_* settings as the services."""

from __future__ import annotations

import sys

import typer
from aiokafka import errors as kafka_errors
from redis import exceptions as redis_errors

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


# Kafka or Redis refusing these credentials: a one-line answer naming what to check, not a
# traceback (exit 3). The error names the topic or user, never a password.
ACCESS_REFUSED = (
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.GroupAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.TransactionalIdAuthorizationFailed,
    kafka_errors.SaslAuthenticationFailed,
    redis_errors.AuthenticationError,
    redis_errors.NoPermissionError,
)


def main() -> None:
    try:
        app()
    except ACCESS_REFUSED as exc:
        print(
            f"handoffctl: access refused: {type(exc).__name__}: {exc}. Check the principal "
            "(HANDOFF_KAFKA_SASL_USERNAME, HANDOFF_REDIS_USERNAME) and its ACLs "
            "(README: Securing a deployment).",
            file=sys.stderr,
        )
        sys.exit(3)


if __name__ == "__main__":
    main()
