"""Opening hours (R17) without a clock: instants in, instants out, DST and closed dates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.handoff.domain.hours import OpeningHours, parse_range

WEEKDAYS_9_TO_5 = {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1000)


def iso(value: int | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1000, UTC).isoformat().replace("+00:00", "Z")


BERLIN = OpeningHours.of("Europe/Berlin", WEEKDAYS_9_TO_5, [])
NEW_YORK = OpeningHours.of("America/New_York", WEEKDAYS_9_TO_5, [])


def test_open_inside_a_range_start_inclusive_end_exclusive() -> None:
    assert BERLIN.is_open(ms("2026-03-25T09:00:00+01:00"))
    assert BERLIN.is_open(ms("2026-03-25T16:59:59+01:00"))
    assert not BERLIN.is_open(ms("2026-03-25T17:00:00+01:00"))
    assert not BERLIN.is_open(ms("2026-03-25T08:59:59+01:00"))
    assert not BERLIN.is_open(ms("2026-03-28T12:00:00+01:00"))  # a Saturday


def test_next_opening_across_the_spring_dst_change_in_berlin() -> None:
    # Friday 27 March 2026, 17:30 CET; the clocks go forward on Sunday 29 March.
    friday_evening = ms("2026-03-27T17:30:00+01:00")
    assert iso(BERLIN.next_opening_ms(friday_evening)) == "2026-03-30T07:00:00Z"  # 09:00 CEST


def test_next_opening_across_the_autumn_dst_change_in_new_york() -> None:
    # Friday 30 October 2026, 18:00 EDT; the clocks go back on Sunday 1 November.
    friday_evening = ms("2026-10-30T18:00:00-04:00")
    assert iso(NEW_YORK.next_opening_ms(friday_evening)) == "2026-11-02T14:00:00Z"  # 09:00 EST


def test_a_range_in_the_skipped_hour_opens_when_the_clock_jumps() -> None:
    sunday_night = OpeningHours.of("Europe/Berlin", {"sun": ["02:00-04:00"]}, [])
    before = ms("2026-03-29T01:30:00+01:00")
    assert not sunday_night.is_open(before)
    # 02:00 local never happens that night: at 01:00 UTC the clock says 03:00 CEST.
    assert iso(sunday_night.next_opening_ms(before)) == "2026-03-29T01:00:00Z"
    only_the_gap = OpeningHours.of("Europe/Berlin", {"sun": ["02:00-02:30"]}, [])
    nxt = only_the_gap.next_opening_ms(before)
    assert nxt is not None and iso(nxt) == "2026-04-05T00:00:00Z"  # the next Sunday 02:00 CEST


def test_the_repeated_hour_is_open_twice_in_new_york() -> None:
    night = OpeningHours.of("America/New_York", {"sun": ["01:00-02:00"]}, [])
    assert night.is_open(ms("2026-11-01T05:30:00+00:00"))  # 01:30 EDT
    assert night.is_open(ms("2026-11-01T06:30:00+00:00"))  # 01:30 EST, an hour later
    assert not night.is_open(ms("2026-11-01T07:00:00+00:00"))  # 02:00 EST


def test_closed_dates_are_skipped() -> None:
    christmas = OpeningHours.of("Europe/Berlin", WEEKDAYS_9_TO_5, ["2026-12-24", "2026-12-25"])
    assert not christmas.is_open(ms("2026-12-24T10:00:00+01:00"))
    wednesday_evening = ms("2026-12-23T18:00:00+01:00")
    assert iso(christmas.next_opening_ms(wednesday_evening)) == "2026-12-28T08:00:00Z"


def test_no_hours_is_always_open_but_closed_dates_still_close_it() -> None:
    always = OpeningHours.of("UTC", None, [])
    assert always.always_open and always.is_open(ms("2026-12-25T03:00:00+00:00"))
    holiday = OpeningHours.of("Asia/Tokyo", None, ["2026-01-01"])
    new_year = ms("2026-01-01T12:00:00+09:00")
    assert not holiday.is_open(new_year)
    assert iso(holiday.next_opening_ms(new_year)) == "2026-01-01T15:00:00Z"  # midnight in Tokyo


def test_open_now_is_its_own_next_opening_and_never_open_is_none() -> None:
    now = ms("2026-03-25T10:00:00+01:00")
    assert BERLIN.next_opening_ms(now) == now
    never = OpeningHours.of("UTC", {}, [])
    assert never.next_opening_ms(now) is None


def test_midnight_end_and_en_dash() -> None:
    assert parse_range("22:00-24:00") == (1320, 1440)
    assert parse_range("09:00\u201317:30") == (540, 1050)
    late = OpeningHours.of("UTC", {"mon": ["22:00-24:00"]}, [])
    assert late.is_open(ms("2026-03-23T23:59:00+00:00"))


@pytest.mark.parametrize("bad", ["25:00-26:00", "09:60-10:00", "24:30-24:45", "9-5", ""])
def test_bad_ranges_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_range(bad)


def test_a_range_ending_before_it_starts_crosses_midnight() -> None:
    assert parse_range("22:00-06:00") == (1320, 1440 + 360)
    assert parse_range("09:00-09:00") == (540, 1440 + 540)  # 24 hours
    night = OpeningHours.of("Europe/Berlin", {"fri": ["22:00-06:00"]}, [])
    assert night.is_open(ms("2026-03-27T23:30:00+01:00"))  # Friday night
    assert night.is_open(ms("2026-03-28T05:59:00+01:00"))  # Saturday morning, same range
    assert not night.is_open(ms("2026-03-28T06:00:00+01:00"))
    assert not night.is_open(ms("2026-03-28T23:00:00+01:00"))  # Saturday has no range
    # The day after is a closed date: the night range stops at midnight.
    cut = OpeningHours.of("Europe/Berlin", {"fri": ["22:00-06:00"]}, ["2026-03-28"])
    assert cut.is_open(ms("2026-03-27T23:30:00+01:00"))
    assert not cut.is_open(ms("2026-03-28T01:00:00+01:00"))


def test_overlapping_ranges_add_up() -> None:
    both = OpeningHours.of("UTC", {"mon": ["09:00-12:00", "11:00-13:00"]}, [])
    assert both.is_open(ms("2026-03-23T12:30:00+00:00"))
    assert not both.is_open(ms("2026-03-23T13:00:00+00:00"))


def test_unknown_days_and_zones_are_refused() -> None:
    with pytest.raises(ValueError, match="weekday"):
        OpeningHours.of("UTC", {"monday": ["09:00-12:00"]}, [])
    with pytest.raises(ValueError, match="IANA"):
        OpeningHours.of("Mars/Olympus", None, [])


def test_describe_uses_the_queue_time_zone() -> None:
    assert (
        BERLIN.describe(ms("2026-03-30T07:00:00+00:00")) == "Monday 30 March, 09:00 (Europe/Berlin)"
    )
