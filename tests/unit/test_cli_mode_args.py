"""`handoffctl mode set` refuses a bad argument before it touches Kafka: one line naming the
option and the bound (from domain/limits.py), exit code 2, no traceback (found from outside:
a pydantic traceback with exit code 1)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from services.cli.main import app
from services.handoff.domain import limits

IDS = ["--tenant", "acme", "--agent", "support", "--user", "walk2"]


@pytest.mark.parametrize(
    ("extra", "option", "words"),
    [
        (["--reason", "x", "--idle-timeout", "20000"], "--idle-timeout", "0-10080"),
        (["--reason", "x", "--idle-timeout", "-3"], "--idle-timeout", "0-10080"),
        (["--reason", "x" * 300], "--reason", f"at most {limits.REASON_CHARS} characters"),
        (["--reason", "   "], "--reason", "say why"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_code_2(
    extra: list[str], option: str, words: str
) -> None:
    result = CliRunner().invoke(app, ["mode", "set", "human", *IDS, *extra])
    out = result.output
    assert result.exit_code == 2, out
    assert option in out and words in out, out
    assert "Traceback" not in out and "pydantic" not in out, out
