"""`Idempotency-Key` of the mode switch: which command a call is, and whether a key is reused.

The command id is derived from the operator, the key AND the target interaction, so one key
sent for two users is two commands. The store's replay marker of a command is its `src`
(see handoff.lua): here it carries a fingerprint of the request body, so the same key, target
and body replay the first call's result, while the same key and target with another body
meet a marker of another source, which the store reports as `duplicate`: 422
`idempotency_key_reused` (the key is the client's promise that the request is the same).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from pydantic import BaseModel

from services.common.ids import derived_id
from services.handoff.api.auth import Operator
from services.handoff.api.errors import ApiError

REUSED = "duplicate"  # what the store says of a command id met with another `src`


@dataclass(frozen=True)
class IdempotentCall:
    key: str  # the client's key, or a fresh one; echoed back in the `Idempotency-Key` header
    command_id: str
    src: str  # the store's replay marker of this call


def idempotent_call(
    operator: Operator, ikey: str, key: str | None, body: BaseModel
) -> IdempotentCall:
    """The command a call is: scoped to the operator (two operators' keys never collide) and
    to the target interaction; its replay marker fingerprints the body."""
    key = key or str(uuid.uuid4())
    command_id = derived_id("api", operator.tenant, operator.sub, ikey, key)
    fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()[:32]
    return IdempotentCall(key, command_id, f"api/{command_id}/{fingerprint}")


def check_reuse(code: str, call: IdempotentCall) -> None:
    """Raises 422 when the key was used before, for this target, with another body."""
    if code == REUSED:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used for another request to this interaction; "
            "use a new key for a new request.",
            headers={"Idempotency-Key": call.key},
        )
