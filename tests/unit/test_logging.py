"""Log redaction (services/common/logging.py): message text and end-user ids stay out of logs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from services.common.logging import configure_logging, pseudonymise_key


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def test_pseudonymise_key_hides_only_the_end_user() -> None:
    out = pseudonymise_key("acme:support:web:alice@example.com")
    assert out.startswith("acme:support:web:~")
    assert "alice" not in out
    assert out == pseudonymise_key("acme:support:web:alice@example.com")
    assert out != pseudonymise_key("acme:support:web:bob@example.com")


@pytest.mark.parametrize("key", ["acme:support:web:", "not-a-key", "a:b:c"])
def test_pseudonymise_key_leaves_anonymous_and_odd_keys(key: str) -> None:
    assert pseudonymise_key(key) == key


def test_pseudonymise_key_with_colons_in_the_external_id() -> None:
    out = pseudonymise_key("acme:support:sms:+33:6:12")
    assert out.startswith("acme:support:sms:~") and "+33" not in out


def log_line(capsys: pytest.CaptureFixture[str], redact: bool) -> dict[str, object]:
    configure_logging("INFO", redact=redact)
    structlog.get_logger().info(
        "handled",
        interaction="acme:support:web:alice",
        text="my card number is 4111",
        reason="wants a person",
        external_id="alice",
        command_id="cmd-1",
    )
    line: dict[str, object] = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    return line


def test_redaction_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    line = log_line(capsys, redact=True)
    assert line["text"] == line["reason"] == line["external_id"] == "[redacted]"
    assert line["interaction"] == pseudonymise_key("acme:support:web:alice")
    assert (line["event"], line["command_id"], line["level"]) == ("handled", "cmd-1", "info")
    assert "alice" not in json.dumps(line) and "4111" not in json.dumps(line)


def test_redaction_can_be_turned_off(capsys: pytest.CaptureFixture[str]) -> None:
    line = log_line(capsys, redact=False)
    assert line["text"] == "my card number is 4111"
    assert line["interaction"] == "acme:support:web:alice"
