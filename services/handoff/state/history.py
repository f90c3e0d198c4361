"""How an interaction's history stores a change record (domain/events.py): compactly.

An entry is a JSON array of the record's values in FIELDS order, without the interaction
key (the history's own key names it), followed by an object of any further fields (a
timeout's `due_at`) when there are some: about 200 B instead of the record's ~350-450 B
(bench/memory.py). handoff.lua's `push_history` writes every entry of a function (commands,
timeouts) in this form; `encode_entry` writes the entries of a rebuild. Entries written before
(the record itself, a JSON object with `ikey`) are read as they are, so a deployment
upgraded in place keeps its histories. Either way `decode_entry` gives the record back, with
`ikey`; fields the record did not have read as null.
"""

from __future__ import annotations

import json
from typing import Any

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


def encode_entry(change: dict[str, Any]) -> str:
    values: list[Any] = [change.get(f) for f in FIELDS]
    further = {k: v for k, v in change.items() if k not in FIELDS and k != "ikey"}
    if further:
        values.append(further)
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def decode_entry(raw: str, ikey: str) -> dict[str, Any]:
    doc = json.loads(raw)
    if isinstance(doc, dict):
        return doc  # written before the compact form: the record as it was
    further = doc.pop() if doc and isinstance(doc[-1], dict) else {}
    record: dict[str, Any] = {"ikey": ikey, **dict.fromkeys(FIELDS)}
    record.update(zip(FIELDS, doc, strict=False))
    return {**record, **further}
