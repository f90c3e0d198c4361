"""The compact form of history entries (services/handoff/state/history.py), an interaction's
and a ticket's: what is written reads back as the record or event it stores, and entries of
the former form read as they are."""

from __future__ import annotations

import json

from schemas import TicketChanged
from services.handoff.domain.events import change_record
from services.handoff.domain.modes import ModeState
from services.handoff.state.history import (
    FIELDS,
    decode_entry,
    decode_ticket_entry,
    encode_entry,
    encode_ticket_entry,
)

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


def a_ticket_change() -> TicketChanged:
    return TicketChanged(
        tenant_id="acme", agent_id="support", user={"channel": "web", "external_id": "zoe:1"},
        event_id="tc-1", ticket_id="tk3-abc", queue="billing", from_status="queued",
        status="assigned", assignee="operator:jane", actor="operator:jane", note="on it",
        changed_at="2026-12-01T13:57:52.658000Z", ticket_version=2, position=None,
    )  # fmt: skip


def test_a_ticket_entry_reads_back_as_its_ticket_changed() -> None:
    change = a_ticket_change()
    raw = encode_ticket_entry(change.model_dump_json())
    assert "acme" not in raw and "tk3-abc" not in raw and "ticket_changed" not in raw
    back = decode_ticket_entry(raw, "tk3-abc", "acme:support:web:zoe:1")
    assert back == json.loads(change.model_dump_json())
    assert TicketChanged.model_validate(back) == change


def test_a_ticket_entry_of_the_former_form_reads_as_it_was_written() -> None:
    former = a_ticket_change().model_dump_json()
    assert decode_ticket_entry(former, "tk3-abc", "x:y:web:z") == json.loads(former)
