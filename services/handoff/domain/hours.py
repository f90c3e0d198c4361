"""Opening hours of a queue (R17): weekly ranges in an IANA time zone, minus closed dates.

Pure: instants in, instants out (epoch milliseconds, the one clock is Redis TIME). The rules:

- `hours` maps a weekday (`mon` ... `sun`) to a list of `HH:MM-HH:MM` ranges in local time
  (an en dash works too). A range is open from its start (inclusive) to its end (exclusive);
  `24:00` ends a range at midnight. Ranges of a day may overlap (they add up). A weekday
  missing from the map is closed all day. No hours at all (`None`) means open around the
  clock.
- A range whose end is before its start crosses midnight: `fri: ["22:00-06:00"]` is open
  from Friday 22:00 to Saturday 06:00; start = end is 24 hours from the start. A range
  belongs to the day it starts on.
- `closed_dates` are local dates (`YYYY-MM-DD`) on which the queue is closed all day: no
  range of that day opens, and a night range of the day before stops at midnight.
- Local time comes from zoneinfo, so a DST change is just a shorter or longer day: a range
  inside the skipped hour never opens, a range across the repeated hour lasts an hour longer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^\s*(\d{2}):(\d{2})\s*[-\u2013]\s*(\d{2}):(\d{2})\s*$")
DAY = 24 * 60
# How far ahead the next opening is searched: a year of closed dates is the most one sets.
SEARCH_DAYS = 400


def parse_range(text: str) -> tuple[int, int]:
    """`HH:MM-HH:MM` -> (start, end) in minutes after local midnight; ValueError if bad."""
    match = _RANGE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a range like 09:00-17:30")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(f"{text!r} has a time that does not exist")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end <= start:
        end += DAY  # crosses midnight (start = end: 24 hours)
    return start, end


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone") from exc


@dataclass(frozen=True)
class OpeningHours:
    timezone: str = "UTC"
    # weekday index (0 = Monday) -> sorted (start, end) minutes after that day's midnight (an
    # end past DAY runs into the next day); None: always open
    weekly: dict[int, tuple[tuple[int, int], ...]] | None = None
    closed_dates: frozenset[date] = frozenset()

    @classmethod
    def of(
        cls, timezone: str, hours: Mapping[str, list[str]] | None, closed_dates: list[str]
    ) -> OpeningHours:
        zone(timezone)
        weekly = None
        if hours is not None:
            weekly = {}
            for day, ranges in hours.items():
                if day not in WEEKDAYS:
                    raise ValueError(f"{day!r} is not a weekday ({', '.join(WEEKDAYS)})")
                weekly[WEEKDAYS.index(day)] = tuple(sorted(parse_range(r) for r in ranges))
        dates = frozenset(date.fromisoformat(d) for d in closed_dates)
        return cls(timezone, weekly, dates)

    @property
    def always_open(self) -> bool:
        return self.weekly is None and not self.closed_dates

    def _local(self, ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone(self.timezone))

    def is_open(self, ms: int) -> bool:
        local = self._local(ms)
        today = local.date()
        if today in self.closed_dates:
            return False
        if self.weekly is None:
            return True
        minute = local.hour * 60 + local.minute
        if any(s <= minute < e for s, e in self.weekly.get(today.weekday(), ())):
            return True
        yesterday = today - timedelta(days=1)
        if yesterday in self.closed_dates:
            return False
        return any(minute + DAY < e for _, e in self.weekly.get(yesterday.weekday(), ()))

    def next_opening_ms(self, ms: int) -> int | None:
        """The first instant at or after `ms` when the queue is open (`ms` itself if it is
        open now); None when it never opens in the next SEARCH_DAYS days."""
        if self.is_open(ms):
            return ms
        tz = zone(self.timezone)
        first = self._local(ms).date()
        for offset in range(SEARCH_DAYS):
            day = first + timedelta(days=offset)
            if day in self.closed_dates:
                continue
            ranges = ((0, DAY),) if self.weekly is None else self.weekly.get(day.weekday(), ())
            for start, _ in ranges:
                # A start in a skipped hour (DST) maps past the gap, where is_open says
                # whether the range is still open (it may lie wholly in the gap).
                local = datetime.combine(day, time(start // 60, start % 60), tz)
                candidate = int(local.astimezone(UTC).timestamp() * 1000)
                if candidate > ms and self.is_open(candidate):
                    return candidate
        return None

    def describe(self, ms: int) -> str:
        """An instant as the queue's people read it: `Monday 2 March, 09:00 (Europe/Berlin)`."""
        local = self._local(ms)
        return f"{local:%A} {local.day} {local:%B}, {local:%H:%M} ({self.timezone})"
