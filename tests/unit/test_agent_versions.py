"""What the agent reads of handoff.events (services/agent/versions.py `fold_of`): the agents'
version records, as the handoff service writes them; every other record skipped."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from schemas import AgentVersionApplied, AgentVersionPublished
from services.agent.domain import PublishedVersion
from services.agent.store import Applied, Published
from services.agent.versions import fold_of
from services.handoff.domain.modes import HandoffConfig

AT = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Rec:
    key: bytes | None
    value: bytes | None
    offset: int = 41
    topic: str = "handoff.events"
    partition: int = 0
    timestamp: int = 0


def applied(**handoff: object) -> bytes:
    config = asdict(HandoffConfig(enabled=True, queues=("default", "billing")))
    event = AgentVersionApplied(
        event_id="e-1", tenant_id="acme", agent_id="support", version=2,
        handoff={**config, **handoff}, created_at=AT, created_by="operator:jane",
    )  # fmt: skip
    return event.model_dump_json().encode()


def test_an_applied_version_becomes_the_agents_model_of_it() -> None:
    fold = fold_of(Rec(b"acme:support", applied(instructions="Hand off when: lawyer")))
    version = PublishedVersion(2, True, "Hand off when: lawyer", ("default", "billing"))
    assert fold == Applied("acme", "support", version)


def test_any_json_formatting_is_read() -> None:
    spaced = json.dumps(json.loads(applied()), indent=2).encode()  # as another client writes it
    fold = fold_of(Rec(b"acme:support", spaced))
    assert isinstance(fold, Applied) and fold.version.version == 2


def test_a_publish_is_kept_with_its_place_in_the_log() -> None:
    event = AgentVersionPublished(
        event_id="e-2", tenant_id="acme", agent_id="support", version=2,
        published_at=AT, published_by="operator:jane",
    )  # fmt: skip
    fold = fold_of(Rec(b"acme:support", event.model_dump_json().encode(), offset=97))
    assert fold == Published("acme", "support", 2, 97)


def test_interaction_events_and_other_agent_records_are_skipped() -> None:
    # Keyed by the interaction: not even read (a ModeChanged naming the type in its reason).
    reason = b'{"type":"mode_changed","reason":"\\"type\\":\\"agent_version_applied\\""}'
    assert fold_of(Rec(b"acme:support:web:alice", reason)) is None
    assert fold_of(Rec(None, applied())) is None
    # The agent's audit record (an operator_action keyed by the agent).
    assert fold_of(Rec(b"acme:support", b'{"type":"operator_action","action":"apply"}')) is None
    audit = b'{"type":"operator_action","action":"agent_version_applied"}'
    assert fold_of(Rec(b"acme:support", audit)) is None


def test_an_unreadable_agent_record_is_skipped_not_fatal() -> None:
    broken = b'{"type":"agent_version_applied","tenant_id":"acme"}'
    assert fold_of(Rec(b"acme:support", broken)) is None
    assert fold_of(Rec(b"acme:support", applied(enabled="yes"))) is None
    assert fold_of(Rec(b"acme:support", b'{"type":"agent_version_published"')) is None
