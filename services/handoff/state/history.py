"""How histories store their entries, compactly: an interaction's change records
(domain/events.py) and a ticket's TicketChanged events.

An entry is a JSON array of the record's values in FIELDS order, without the interaction
key (the history's own key names it), followed by an object of any further fields (a
timeout's `due_at`) when there are some: about 200 B instead of the record's ~350-450 B
(bench/memory.py). handoff.lua's `push_history` writes every entry of a function (commands,
timeouts) in this form; `encode_entry` writes the entries of a rebuild. Entries written before
(the record itself, a JSON object with `ikey`) are read as they are, so a deployment
upgraded in place keeps its histories. Either way `decode_entry` gives the record back, with
`ikey`; fields the record did not have read as null.

A ticket's entry is the same kind of array of its TicketChanged's TICKET_FIELDS, without what
the ticket names (type, ticket id, the interaction's ids): ~200 B instead of ~420 B.
handoff.lua's `ticket_changed_here` writes them; `encode_ticket_entry` those of a rebuild.
"""

from __future__ import annotations

import json
from typing import Any

from schemas import parse_interaction_key

# The order of an entry's values; handoff.lua's HISTORY_FIELDS is the same list. A field added
# later goes at the end (older entries are shorter; their missing values read as null).
FIELDS = (
    "event_id",
    "from_mode",
    "to_mode",
    "cause",
    "actor",
    "reason",
    "changed_at",
    "expires_at",
    "idle_ms",
    "version",
    "command_id",
)


def _compact(record: dict[str, Any], fields: tuple[str, ...], named: tuple[str, ...]) -> str:
    values: list[Any] = [record.get(f) for f in fields]
    further = {k: v for k, v in record.items() if k not in fields and k not in named}
    if further:
        values.append(further)
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def _expanded(values: list[Any], fields: tuple[str, ...], named: dict[str, Any]) -> dict[str, Any]:
    further = values.pop() if values and isinstance(values[-1], dict) else {}
    record = {**named, **dict.fromkeys(fields)}
    record.update(zip(fields, values, strict=False))
    return {**record, **further}


def encode_entry(change: dict[str, Any]) -> str:
    return _compact(change, FIELDS, ("ikey",))


def decode_entry(raw: str | bytes, ikey: str) -> dict[str, Any]:
    doc = json.loads(raw)
    if isinstance(doc, dict):
        return doc  # written before the compact form: the record as it was
    return _expanded(doc, FIELDS, {"ikey": ikey})


# handoff.lua's TICKET_HISTORY_FIELDS is the same list; the event's other fields but these
# (type, ticket_id, tenant_id, agent_id, user) are the ticket's, rebuilt when read.
TICKET_FIELDS = (
    "event_id",
    "schema_version",
    "queue",
    "from_status",
    "status",
    "assignee",
    "actor",
    "note",
    "changed_at",
    "ticket_version",
    "position",
)
_OF_THE_TICKET = ("type", "ticket_id", "tenant_id", "agent_id", "user")


def encode_ticket_entry(change_json: str) -> str:
    return _compact(json.loads(change_json), TICKET_FIELDS, _OF_THE_TICKET)


def decode_ticket_entry(raw: str | bytes, ticket_id: str, ikey: str) -> dict[str, Any]:
    """The TicketChanged of an entry of the ticket `ticket_id` of the interaction `ikey`."""
    doc = json.loads(raw)
    if isinstance(doc, dict):
        return doc  # written before the compact form: the event as it was
    ids = parse_interaction_key(ikey).model_dump(mode="json")
    return _expanded(doc, TICKET_FIELDS, {"type": "ticket_changed", **ids, "ticket_id": ticket_id})
