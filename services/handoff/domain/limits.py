"""Every bound on what an operator or an agent may set, in one table.

The operator API's request models, the CLI, the console (through `GET /v1/limits`) and the
command rules (`modes.check_command`, which the Kafka path meets too) all read these; to
change a bound, change it here. The contract's wire bounds (schemas/) are the outer limit:
a bound here may be tighter, never looser.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

WEEK_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class Bound:
    """An inclusive range of whole numbers."""

    min: int
    max: int

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and self.min <= value <= self.max


# An agent version's idle timeout (Apply): human mode ends this long after the last activity.
IDLE_TIMEOUT_MINUTES = Bound(1, WEEK_MINUTES)
# An operator's override on a switch to human (API and handoff.operator-commands); 0 = none.
SWITCH_IDLE_TIMEOUT_MINUTES = Bound(0, WEEK_MINUTES)
# R19: a teammate keeps human mode at least this long from now.
EXTEND_MINUTES = Bound(1, WEEK_MINUTES)
# R18: a queue's pickup target.
PICKUP_TARGET_MINUTES = Bound(1, WEEK_MINUTES)

# Lengths, in characters.
REASON_CHARS = 280
INSTRUCTIONS_CHARS = 2000
NOTICE_CHARS = 1000
NOTE_CHARS = 2000
NAME_CHARS = 200
QUEUES_PER_AGENT = 50


def table() -> dict[str, object]:
    """The bounds by name, as `GET /v1/limits` answers them (the console reads this)."""
    return {
        "idle_timeout_minutes": asdict(IDLE_TIMEOUT_MINUTES),
        "switch_idle_timeout_minutes": asdict(SWITCH_IDLE_TIMEOUT_MINUTES),
        "extend_minutes": asdict(EXTEND_MINUTES),
        "pickup_target_minutes": asdict(PICKUP_TARGET_MINUTES),
        "reason_chars": REASON_CHARS,
        "instructions_chars": INSTRUCTIONS_CHARS,
        "notice_chars": NOTICE_CHARS,
        "note_chars": NOTE_CHARS,
        "name_chars": NAME_CHARS,
        "queues_per_agent": QUEUES_PER_AGENT,
    }
