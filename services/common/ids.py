"""Ids derived from what caused an output, so a replayed input yields byte-identical records.

Shared by every service (the handoff service, the timeout worker, the reference agent): one
namespace, so two services never derive the same id from different causes by accident, and
one function, so the ids of a record do not depend on which service made it.
"""

from __future__ import annotations

import uuid

IDS = uuid.UUID("6f1d7a53-6c4b-4f5e-9d0e-68616e646f66")  # namespace of every derived id


def derived_id(*parts: object) -> str:
    """A stable id for an output, so a replayed input yields byte-identical records."""
    return str(uuid.uuid5(IDS, "\x1f".join(str(p) for p in parts)))
