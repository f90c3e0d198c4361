"""Prometheus metrics of every service (names listed in the README)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_ROUTED = Counter(
    "handoff_messages_routed_total", "User messages routed, by mode.", ["mode"]
)
DUPLICATES = Counter(
    "handoff_duplicates_dropped_total",
    "Inbound records dropped as repeats of an event id.",
    ["topic"],
)
DEAD_LETTERS = Counter(
    "handoff_dead_letters_total", "Records sent to the dead-letter topic.", ["kind", "source_topic"]
)
REPLIES = Counter(
    "handoff_agent_replies_total", "Agent replies at the reply gate, by verdict.", ["verdict"]
)
MODE_CHANGES = Counter("handoff_mode_changes_total", "Mode changes emitted, by cause.", ["cause"])
COMMANDS = Counter(
    "handoff_commands_total", "Handoff commands handled, by result code.", ["result"]
)
TIMEOUT_REVERT_LAG = Histogram(
    "handoff_timeout_revert_lag_seconds",
    "Emitted-at minus due-at of timeout reverts.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
BATCH_SIZE = Histogram(
    "handoff_batch_records",
    "Records per consumed batch.",
    ["service"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
REDIS_SECONDS = Histogram(
    "handoff_redis_call_seconds",
    "Latency of one Redis round trip (a pipeline counts once).",
    ["call"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
CONSUMER_LAG = Gauge(
    "handoff_consumer_lag_records",
    "Records behind the end of each consumed partition, after the last batch.",
    ["service", "topic", "partition"],
)
PARTITION_FAILED_ATTEMPTS = Gauge(
    "handoff_partition_failed_attempts",
    "Consecutive failed attempts at the batch holding each partition (0 once it commits).",
    ["service", "topic", "partition"],
)
PARTITION_STUCK_SECONDS = Gauge(
    "handoff_partition_stuck_seconds",
    "Seconds a partition's batch has kept failing, as of its last attempt (0 once it commits).",
    ["service", "topic", "partition"],
)
PICKUP_OVERDUE = Counter(
    "handoff_pickup_overdue_total",
    "Tickets still queued at their queue's pickup target (R18), announced once each.",
    ["tenant", "queue"],
)
TICKET_ACTIONS = Counter(
    "handoff_ticket_actions_total",
    "Ticket actions of the operator API (R15), by action and result code.",
    ["action", "result"],
)
WAITING_NOTICES = Counter(
    "handoff_waiting_notices_total", "Notices of a better place in line sent to users (R16)."
)
