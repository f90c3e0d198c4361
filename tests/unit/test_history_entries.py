"""The compact form of a history entry (services/handoff/state/history.py): what is written
reads back as the change record, and entries of the former form read as they are."""

from __future__ import annotations

import json

from services.handoff.domain.events import change_record
from services.handoff.domain.modes import ModeState
from services.handoff.state.history import FIELDS, decode_entry, encode_entry

IKEY = "acme:support:web:zoe"


def a_change() -> dict[str, object]:
    after = ModeState(
        mode="human", cause="agent", actor="agent:support@1", reason="Wants a person: é/ü",
        changed_at_ms=1_796_133_472_658, expires_at_ms=1_796_137_072_658, idle_ms=3_600_000,
        human_since_ms=1_796_133_472_658, version=3, command_id="cmd-1",
    )  # fmt: skip
    return change_record(IKEY, ModeState(), after, "ev-1")


def test_an_entry_reads_back_as_its_change_record() -> None:
    change = a_change()
    assert decode_entry(encode_entry(change), IKEY) == change


def test_an_entry_holds_neither_the_interaction_key_nor_field_names() -> None:
    raw = encode_entry(a_change())
    assert IKEY not in raw and "from_mode" not in raw
    assert json.loads(raw)[: len(FIELDS)] == [a_change()[f] for f in FIELDS]
    assert len(raw.encode()) < len(json.dumps(a_change()).encode()) * 0.6


def test_further_fields_are_kept_and_missing_ones_read_as_null() -> None:
    timeout = {"event_id": "tmo-1", "ikey": IKEY, "from_mode": "human", "to_mode": "ai",
               "cause": "timeout", "actor": "system:timeout", "reason": "idle",
               "changed_at": 2, "due_at": 1, "version": 4}  # fmt: skip
    assert decode_entry(encode_entry(timeout), IKEY) == {
        **timeout, "expires_at": None, "idle_ms": None, "command_id": None,
    }  # fmt: skip


def test_an_entry_of_the_former_form_reads_as_it_was_written() -> None:
    former = json.dumps(a_change())
    assert decode_entry(former, "another:key:of:no:matter") == a_change()
