"""Outbox stream ids as Kafka checkpoints (services/handoff/state/store.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.handoff.state.store import outbox_seq, stream_id

ms = st.integers(min_value=0, max_value=(1 << 43) - 1)  # ms up to the year 2248
n = st.integers(min_value=0, max_value=(1 << 20) - 1)


@given(ms, n)
def test_a_stream_id_survives_the_round_trip(at: int, count: int) -> None:
    assert stream_id(outbox_seq(f"{at}-{count}")) == f"{at}-{count}"


@given(ms, n, ms, n)
def test_numbers_order_like_the_stream_ids(a: int, i: int, b: int, j: int) -> None:
    assert (outbox_seq(f"{a}-{i}") < outbox_seq(f"{b}-{j}")) == ((a, i) < (b, j))


def test_numbers_fit_a_kafka_offset_until_2248() -> None:
    assert outbox_seq(f"{(1 << 43) - 1}-{(1 << 20) - 1}") < 2**63
