"""The interaction key (schemas/interaction.py) and the Redis key layout (state/keys.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import InteractionIds, interaction_key, parse_interaction_key
from schemas.events import ID_PATTERN
from services.handoff.state.keys import SHARDS, InteractionKeys, shard_of
from tests.unit.builders import ids

ids_ = st.from_regex(ID_PATTERN, fullmatch=True)
# 1-256 printable characters, with the ones that matter to keys made likely.
external_ids = st.text(
    st.one_of(
        st.sampled_from(":{} "),
        # Printable as str.isprintable() has it: no controls, formats, separators but ' '.
        st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")),
    ),
    min_size=1,
    max_size=256,
)
interactions = st.builds(
    lambda t, a, c, e: InteractionIds.model_validate(
        {"tenant_id": t, "agent_id": a, "user": {"channel": c, "external_id": e}}
    ),
    ids_,
    ids_,
    ids_,
    st.none() | external_ids,
)


def redis_hash_tag(key: str) -> str:
    """What Redis Cluster hashes: the part between the first '{' and the next '}', if not empty."""
    start = key.find("{")
    if start == -1:
        return key
    end = key.find("}", start + 1)
    if end == -1 or end == start + 1:
        return key
    return key[start + 1 : end]


@pytest.mark.parametrize(
    ("external_id", "key"),
    [
        ("alice", "acme:support:web:alice"),
        ("a:b:c", "acme:support:web:a:b:c"),
        ("{x}", "acme:support:web:{x}"),
        (None, "acme:support:web:"),
    ],
)
def test_interaction_key_format(external_id: str | None, key: str) -> None:
    interaction = InteractionIds.model_validate(ids(external_id))
    assert interaction_key(interaction) == key
    assert parse_interaction_key(key) == interaction


@settings(database=None)
@given(interactions)
def test_interaction_key_round_trip(interaction: InteractionIds) -> None:
    assert parse_interaction_key(interaction_key(interaction)) == interaction


@settings(database=None)
@given(interactions)
def test_every_key_of_an_interaction_shares_one_hash_tag(interaction: InteractionIds) -> None:
    k = InteractionKeys(interaction_key(interaction))
    keys = [
        k.state,
        k.lease,
        k.history,
        k.transcript,
        k.deadlines,
        k.outbox,
        k.seen("m-{1}"),
        k.reply("r-1"),
        k.command("cmd:{x}"),
    ]
    tags = {redis_hash_tag(key) for key in keys}
    assert tags == {f"h{shard_of(k.ikey)}"}
    assert len(set(keys)) == len(keys)


def test_shards_are_stable_and_in_range() -> None:
    assert shard_of("acme:support:web:alice") == shard_of("acme:support:web:alice")
    assert {shard_of(f"acme:support:web:u{n}") for n in range(2000)} == set(range(SHARDS))


def test_redis_hash_tag_helper() -> None:
    assert redis_hash_tag("ho:state:{h1}:a:{b}") == "h1"
    assert redis_hash_tag("{}{x}") == "{}{x}"
    assert redis_hash_tag("no-tag") == "no-tag"
    assert redis_hash_tag("a{b") == "a{b"
