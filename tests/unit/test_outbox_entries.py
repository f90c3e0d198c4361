"""Reading the shard outbox's entries, and the relay's budget per sweep (pure logic)."""

from __future__ import annotations

import json

from services.handoff.state.outbox import OutboxEntry, Revert
from services.timeout.worker import within_budget

US, RS = "\x1f", "\x1e"


def test_a_revert_entry_holds_its_records_and_reverts_without_escaping() -> None:
    event, notice = '{"type":"mode_changed","reason":"a \\"b\\""}', '{"text":"x:y"}'
    fields = {
        "records": RS.join(
            ["events" + US + "t:a:web:u:1" + US + event, f"outbound{US}t:a:web:u:1{US}{notice}"]
        ),
        "reverts": f"t:a:web:u:1{US}tmo-1{US}2{US}1700000000000",
    }
    entry = OutboxEntry.of(5, "1700000000001-3", fields)
    assert entry.outputs == [("events", "t:a:web:u:1", event), ("outbound", "t:a:web:u:1", notice)]
    assert entry.traces == [{}, {}]
    assert entry.reverts == [Revert("t:a:web:u:1", "tmo-1", 2, 1700000000000)]
    assert (entry.shard, entry.seq, entry.weight, entry.legacy_change) == (
        5, (1700000000001 << 20) | 3, 1, None,
    )  # fmt: skip


def test_an_entry_queued_before_reverts_carried_their_mode_changed_is_still_a_revert() -> None:
    change = {
        "event_id": "tmo-9",
        "ikey": "t:a:web:u",
        "version": 4,
        "due_at": 17,
        "cause": "timeout",
    }
    notice = ["outbound", "t:a:web:u", '{"text":"back"}']
    entry = OutboxEntry.of(1, "5-0", {"change": json.dumps(change), "out": json.dumps([notice])})
    assert entry.legacy_change == change
    assert entry.reverts == [Revert("t:a:web:u", "tmo-9", 4, 17)]
    assert entry.outputs == [tuple(notice)]


def test_an_operator_change_is_no_revert_and_weighs_one() -> None:
    entry = OutboxEntry.of(1, "5-0", {"out": json.dumps([["events", "k", "{}"]])})
    assert (entry.reverts, entry.weight, entry.legacy_change) == ([], 1, None)


def entry(shard: int, seq: int, reverts: int) -> OutboxEntry:
    revert = Revert("k", "tmo-x", 2, None)
    return OutboxEntry(shard, seq, [], [], [revert] * reverts)


def test_the_relay_takes_each_shards_first_entries_within_its_budget_and_always_one() -> None:
    entries = [
        entry(1, 1, 16), entry(1, 2, 16), entry(1, 3, 0), entry(1, 4, 0),  # 16 + 16 > 20
        entry(2, 1, 0), entry(2, 2, 0), entry(2, 3, 16), entry(2, 4, 0),  # 1 + 1 + 16 + 1 <= 20
        entry(3, 1, 30),  # heavier than the budget alone: taken, or the shard would stall
        entry(4, 1, 4), entry(4, 2, 17), entry(4, 3, 1),  # a prefix: nothing after a skip
    ]  # fmt: skip
    taken = [(e.shard, e.seq) for e in within_budget(entries, 20)]
    assert taken == [(1, 1), (2, 1), (2, 2), (2, 3), (2, 4), (3, 1), (4, 1)]
