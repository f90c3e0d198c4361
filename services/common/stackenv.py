"""Where a running `make run` stack is: `.run/handoff.env`, written by devstack/system.py.

`make run` writes the settings it gave its services (HANDOFF_* lines: Kafka, Redis, ports,
the length of a minute, the web chat's folder) once they are all ready, and removes the file
when it stops. The tools that talk to that stack from outside (`handoffctl chat` and `desk`,
`make demo`) read it, so they reach the same Kafka and Redis and name the same files. Variables
set in the environment win over the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from services.common.settings import CommonSettings

RUN_ENV = Path(".run") / "handoff.env"

S = TypeVar("S", bound=CommonSettings)


def stack_settings(cls: type[S], env_file: Path | None = None) -> S:
    """`cls` read from the environment, then from the stack's env file if it exists."""
    path = env_file or RUN_ENV
    return cls(_env_file=path) if path.is_file() else cls()


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """Writes the HANDOFF_* settings atomically: a reader never sees half a file."""
    lines = [f"{k}={v}" for k, v in sorted(env.items()) if k.startswith("HANDOFF_")]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
