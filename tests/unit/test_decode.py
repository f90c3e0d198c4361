"""decode / dead_letter / Output.of (services/common/kafka.py): R11 without a broker."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import pytest

from schemas import DeadLetter, HandoffCommand, UserMessage
from services.common.kafka import MAX_VALUE_BYTES, Output, dead_letter, decode
from tests.unit.builders import message, message_data


@dataclass
class FakeRecord:
    """Stands in for aiokafka's ConsumerRecord."""

    value: bytes | None
    key: bytes | None = b"acme:support:web:alice"
    topic: str = "chat.inbound"
    partition: int = 2
    offset: int = 41
    timestamp: int = 0


def letter(value: bytes | None, model: type = UserMessage) -> DeadLetter:
    result = decode(FakeRecord(value), model)
    assert isinstance(result, DeadLetter), result
    return result


def test_a_valid_record_decodes_to_its_model() -> None:
    assert decode(FakeRecord(json.dumps(message_data()).encode()), UserMessage) == message()


def test_type_may_be_omitted() -> None:
    data = message_data()
    del data["type"]
    assert isinstance(decode(FakeRecord(json.dumps(data).encode()), UserMessage), UserMessage)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (b"\xff\xfe not utf-8", "undecodable"),
        (b'{"type": "user_message", ', "invalid_json"),
        (b"", "invalid_json"),
        (None, "invalid_json"),  # a tombstone
        (json.dumps(message_data(event_id="")).encode(), "schema_invalid"),
        (json.dumps(message_data(schema_version=2)).encode(), "schema_invalid"),
        (json.dumps(message_data(text="€" * 11_000)).encode(), "schema_invalid"),
        (b"[1, 2]", "schema_invalid"),
        (json.dumps(message_data(type="agent_reply")).encode(), "unknown_type"),
        (b" " * (MAX_VALUE_BYTES + 1), "too_large"),
    ],
)
def test_bad_records_become_dead_letters(value: bytes | None, kind: str) -> None:
    dl = letter(value)
    assert dl.error.kind == kind
    assert dl.error.detail
    assert (dl.source_topic, dl.partition, dl.offset) == ("chat.inbound", 2, 41)
    assert dl.key == "acme:support:web:alice"
    assert dl.raw_size == len(value or b"")
    raw = base64.b64decode(dl.raw)
    if dl.raw_truncated:  # only the over-size one is cut, to fit one Kafka record
        assert kind == "too_large" and 0 < len(raw) < len(value or b"")
        assert (value or b"").startswith(raw)
    else:
        assert raw == (value or b"")


def test_schema_invalid_names_the_field() -> None:
    dl = letter(json.dumps(message_data(user={"channel": "web", "external_id": ""})).encode())
    assert "user.external_id" in dl.error.detail


def test_unknown_type_is_checked_against_the_wanted_model() -> None:
    assert letter(json.dumps(message_data()).encode(), HandoffCommand).error.kind == "unknown_type"


def test_deeply_nested_json_is_dead_lettered_not_raised() -> None:
    dl = letter(b"[" * 100_000 + b"]" * 100_000)
    assert (dl.error.kind, dl.error.detail) == ("invalid_json", "JSON nested too deeply")


def test_dead_letter_without_key_and_long_detail() -> None:
    record = FakeRecord(b"\x00\x01", key=None)
    dl = dead_letter(record, "undecodable", "x" * 5000)
    assert dl.key is None
    assert len(dl.error.detail) == 2000
    assert base64.b64decode(dl.raw) == b"\x00\x01"
    assert dl.received_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_dead_letter_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError):
        dead_letter(FakeRecord(b"x"), "weird", "detail")


def test_output_of_serialises_the_event() -> None:
    msg = message()
    out = Output.of("chat.ai-requests", "acme:support:web:alice", msg)
    assert (out.topic, out.key) == ("chat.ai-requests", "acme:support:web:alice")
    assert UserMessage.model_validate_json(out.value) == msg
    assert json.loads(out.value)["type"] == "user_message"
