"""Traffic for the fault tests, and the invariants every run must keep.

Messages carry a per-interaction sequence number; `check_routing` proves, over everything
that came out: nothing lost (every input id is on chat.ai-requests, chat.human-queue or
chat.dead-letter), nothing twice, each interaction's order kept, and no message of a
human-mode interaction on the AI topic.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from devstack.harness.bus import Bus
from devstack.harness.events import Who, key_of


@dataclass
class Load:
    users: list[Who]
    human: set[str] = field(default_factory=set)  # keys of human-mode interactions
    sent: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    poison: set[str] = field(default_factory=set)  # ids of records meant for the dead letters

    @property
    def total(self) -> int:
        return sum(map(len, self.sent.values())) + len(self.poison)

    async def produce(self, bus: Bus, rounds: int, chunk: int = 500, pace: float = 0.0) -> None:
        """`rounds` messages per interaction, round robin, sent `chunk` at a time."""
        pending = []
        for n in range(rounds):
            for who in self.users:
                message = who.message(f"seq:{n}")
                self.sent[who.key].append(message["event_id"])
                pending.append((who.key, json.dumps(message).encode()))
                if len(pending) >= chunk:
                    await send_all(bus, pending)
                    pending = []
                    if pace:
                        await asyncio.sleep(pace)  # the traffic's pace, not synchronisation
        await send_all(bus, pending)


async def send_all(bus: Bus, records: list[tuple[str, bytes]]) -> None:
    producer = bus._producer
    futures = [
        await producer.send(bus.topics.inbound, value, key=key.encode()) for key, value in records
    ]
    await asyncio.gather(*futures)


def outputs_seen(bus: Bus) -> int:
    """Routed messages and dead letters so far (a human queue's tickets do not count)."""
    kinds = ("routed_message", "dead_letter")
    return sum(1 for s in bus.records if isinstance(s.value, dict) and s.value.get("type") in kinds)


def routing_figures(bus: Bus, load: Load) -> dict[str, Any]:
    """Over everything that came out: how many inputs were lost, came out twice, came out
    unexpected, which interactions lost their order, which human-mode messages went to the AI."""
    routed: dict[str, list[str]] = defaultdict(list)
    ids: list[str] = []
    on_ai: list[str] = []
    for s in bus.records:
        if s.topic in (bus.topics.ai_requests, bus.topics.human_queue):
            if s.value.get("type") != "routed_message":
                continue  # a HandoffTicket
            m = s.value["message"]
            key = key_of(m)
            routed[key].append(m["event_id"])
            ids.append(m["event_id"])
            if s.topic == bus.topics.ai_requests and key in load.human:
                on_ai.append(m["event_id"])
        elif s.topic == bus.topics.dead_letter:
            ids.append(poison_id(s.value))
    expected = {e for events in load.sent.values() for e in events} | load.poison
    return {
        "lost": len(expected - set(ids)),
        "duplicated": len(ids) - len(set(ids)),
        "unexpected": len(set(ids) - expected),
        "order_broken": [k for k, events in load.sent.items() if routed[k] != events],
        "ai_for_human_mode": on_ai,
    }


def check_routing(bus: Bus, load: Load) -> None:
    f = routing_figures(bus, load)
    assert f["duplicated"] == 0, f"{f['duplicated']} records came out twice"
    assert f["lost"] == f["unexpected"] == 0, f"lost {f['lost']}, unexpected {f['unexpected']}"
    on_ai, broken = f["ai_for_human_mode"], f["order_broken"]
    assert not on_ai, f"{len(on_ai)} messages of human-mode users went to the AI"
    assert not broken, f"order broken for {len(broken)} interactions, e.g. {broken[0]}"


def poison_id(letter: dict[str, Any]) -> str:
    """Poison records carry an id: `poison:<id>:...` in bytes, or an `event_id` in JSON."""
    raw = base64.b64decode(letter["raw"])
    if raw.startswith(b"poison:"):
        return raw.split(b":", 2)[1].decode()
    # Not parsed: the value may be cut (raw_truncated) or hold what Python's json refuses.
    found = re.search(rb'"event_id": ?"([^"]+)"', raw)
    assert found, "a poison record without an event id in its first bytes"
    return found.group(1).decode()
