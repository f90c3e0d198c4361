"""Field limits and wire format of the contract's models (schemas/events.py)."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import schemas.__main__ as schemas_cli
from schemas import EndUser, OutboundMessage, UserMessage
from schemas.events import ID_PATTERN
from tests.unit.builders import attachment, ids, message, message_data


@pytest.mark.parametrize("good", ["a", "A", "9", "a.b_c-d", "x" * 128])
def test_id_pattern_accepts(good: str) -> None:
    assert message(tenant_id=good).tenant_id == good


@pytest.mark.parametrize("bad", ["", "-a", ".a", "_a", "a:b", "a b", "a{b}", "é", "a\n", "x" * 129])
@pytest.mark.parametrize("field", ["tenant_id", "agent_id", "channel"])
def test_id_pattern_rejects(field: str, bad: str) -> None:
    data = message_data()
    if field == "channel":
        data["user"] = {"channel": bad, "external_id": "alice"}
    else:
        data[field] = bad
    with pytest.raises(ValidationError):
        UserMessage.model_validate(data)


@settings(database=None)
@given(st.from_regex(ID_PATTERN, fullmatch=True))
def test_every_id_matching_the_contract_pattern_is_accepted(value: str) -> None:
    assert EndUser(channel=value).channel == value


@pytest.mark.parametrize("good", ["a", "x" * 256, "+33 6 12:34", "{weird}:id", "ünïcødé 😀"])
def test_external_id_accepts_1_to_256_printable(good: str) -> None:
    assert EndUser(channel="web", external_id=good).external_id == good


@pytest.mark.parametrize("bad", ["", "x" * 257, "a\nb", "a\tb", "a\x00b", "a\x7fb"])
def test_external_id_rejects(bad: str) -> None:
    with pytest.raises(ValidationError):
        EndUser(channel="web", external_id=bad)


def test_external_id_may_be_absent_or_null_for_an_anonymous_user() -> None:
    assert message(user={"channel": "web"}).user.external_id is None
    assert message(user={"channel": "web", "external_id": None}).user.external_id is None


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("a" * 32 * 1024, True),
        ("a" * (32 * 1024 + 1), False),
        ("€" * 10_922, True),  # 32,766 bytes
        ("€" * 11_000, False),  # 11,000 code points but 33,000 bytes
        ("😀" * 8192, True),  # exactly 32 KiB of 4-byte characters
        ("😀" * 8193, False),
    ],
)
def test_text_limit_is_32_kib_of_utf8(text: str, ok: bool) -> None:
    if ok:
        assert message(text=text).text == text
    else:
        with pytest.raises(ValidationError, match="bytes in UTF-8"):
            message(text=text)


def test_outbound_text_has_the_same_limit() -> None:
    with pytest.raises(ValidationError):
        OutboundMessage(
            **ids(), event_id="o", sender="ai", text="€" * 11_000, sent_at="2024-05-01T12:00:00Z"
        )


@pytest.mark.parametrize(("count", "ok"), [(0, True), (20, True), (21, False)])
def test_at_most_20_attachments(count: int, ok: bool) -> None:
    attachments = [attachment(n) for n in range(count)]
    if ok:
        assert len(message(attachments=attachments).attachments) == count
    else:
        with pytest.raises(ValidationError):
            message(attachments=attachments)


@pytest.mark.parametrize(
    "sent_at",
    ["2024-05-01T14:00:00+02:00", "2024-05-01T07:00:00-05:00", "2024-05-01T12:00:00Z"],
)
def test_timestamps_are_normalised_to_utc_and_serialised_with_z(sent_at: str) -> None:
    msg = message(sent_at=sent_at)
    assert msg.sent_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert msg.sent_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert json.loads(msg.model_dump_json())["sent_at"] == "2024-05-01T12:00:00Z"


@pytest.fixture
def new_york_tz(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("new_york_tz")
def test_timestamp_without_offset_is_rejected_whatever_the_host_time_zone() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        message(sent_at="2024-05-01T12:00:00")


def test_unknown_fields_are_ignored_at_every_level() -> None:
    data = message_data(future_field=1, attachments=[{**attachment(), "sha256": "ab"}])
    data["user"] = {**data["user"], "locale": "fr"}
    dumped = json.loads(UserMessage.model_validate(data).model_dump_json())
    assert "future_field" not in dumped
    assert "locale" not in dumped["user"]
    assert "sha256" not in dumped["attachments"][0]


def test_schema_version_1_only() -> None:
    assert message().schema_version == 1
    data = message_data()
    del data["schema_version"]
    assert json.loads(UserMessage.model_validate(data).model_dump_json())["schema_version"] == 1
    for version in (0, 2):
        with pytest.raises(ValidationError):
            message(schema_version=version)


def test_type_is_the_snake_case_model_name() -> None:
    with pytest.raises(ValidationError):
        message(type="agent_reply")


def test_schema_check_passes_on_the_checked_in_files() -> None:
    assert schemas_cli.main(["--check"]) == 0


@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    shutil.copytree(schemas_cli.DEFAULT_DIR, tmp_path / "json")
    out = tmp_path / "json"
    assert schemas_cli.main(["--check", str(out)]) == 0
    return out


def test_schema_check_fails_on_a_modified_file(
    schema_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = schema_copy / "user_message.schema.json"
    schema = json.loads(target.read_text())
    schema["properties"]["text"]["title"] = "Edited by hand"
    target.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    assert schemas_cli.main(["--check", str(schema_copy)]) == 1
    assert "user_message.schema.json" in capsys.readouterr().err


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_schema_check_fails_on_a_missing_or_extra_file(schema_copy: Path, change: str) -> None:
    if change == "missing":
        (schema_copy / "dead_letter.schema.json").unlink()
    else:
        (schema_copy / "old_event.schema.json").write_text("{}\n")
    assert schemas_cli.main(["--check", str(schema_copy)]) == 1


def test_schema_write_then_check(tmp_path: Path) -> None:
    assert schemas_cli.main([str(tmp_path)]) == 0
    assert schemas_cli.main(["--check", str(tmp_path)]) == 0
    assert os.listdir(tmp_path) and all(p.endswith(".schema.json") for p in os.listdir(tmp_path))
