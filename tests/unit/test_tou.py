"""Time zone, DST and TOU calendar: hand-computed cases and properties (SPEC §3)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrology.tou import (
    DAY_TYPES,
    HOLIDAY1,
    HOLIDAY2,
    DaySchedule,
    DstRule,
    Season,
    TimeZone,
    TouCalendar,
    epoch_seconds,
    flat_calendar,
)

SUN = 6
# EU: last Sunday of March 01:00 UTC to last Sunday of October 01:00 UTC (02:00 CET / 03:00 CEST)
CET = TimeZone(60, 60, DstRule(3, 5, SUN, 120), DstRule(10, 5, SUN, 180))
# US Eastern: second Sunday of March 02:00 EST to first Sunday of November 02:00 EDT
EASTERN = TimeZone(-300, 60, DstRule(3, 2, SUN, 120), DstRule(11, 1, SUN, 120))
# Sydney: first Sunday of October 02:00 AEST to first Sunday of April 03:00 AEDT
SYDNEY = TimeZone(600, 60, DstRule(10, 1, SUN, 120), DstRule(4, 1, SUN, 180))
# Years the rules above have held for these zones in the tz database
ZONES = [(CET, "Europe/Berlin", 1996), (EASTERN, "America/New_York", 2007), (SYDNEY, "Australia/Sydney", 2008)]


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def test_dst_transitions_by_hand():
    assert CET.transitions(2024) == (utc(2024, 3, 31, 1), utc(2024, 10, 27, 1))
    assert EASTERN.transitions(2025) == (utc(2025, 3, 9, 7), utc(2025, 11, 2, 6))
    assert SYDNEY.transitions(2024) == (utc(2024, 10, 5, 16), utc(2024, 4, 6, 16))
    assert CET.local(utc(2024, 3, 31, 0, 59, 59)) == datetime(2024, 3, 31, 1, 59, 59)
    assert CET.local(utc(2024, 3, 31, 1)) == datetime(2024, 3, 31, 3, 0)
    assert SYDNEY.is_dst(utc(2024, 1, 15)) and not SYDNEY.is_dst(utc(2024, 7, 15))


def test_local_to_utc_gap_and_overlap():
    assert CET.to_utc(datetime(2024, 3, 31, 2, 30)) == []
    assert CET.to_utc(datetime(2024, 10, 27, 2, 30)) == [utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 1, 30)]
    assert CET.to_utc(datetime(2024, 7, 1, 12)) == [utc(2024, 7, 1, 10)]


def test_offsets_outside_spec_ranges_are_refused():
    with pytest.raises(ValueError, match="-12:00"):
        TimeZone(14 * 60)
    with pytest.raises(ValueError, match="-3:00"):
        TimeZone(0, 240, DstRule(3, 5, SUN, 60), DstRule(10, 5, SUN, 60))
    with pytest.raises(ValueError, match="both"):
        TimeZone(0, 60, DstRule(3, 5, SUN, 60), None)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ZONES), st.integers(0, 25 * 365 * 86400))
def test_local_time_matches_the_tz_database(zone, offset_s):
    tz, name, since = zone
    t = utc(since, 1, 1) + offset_s
    if datetime.fromtimestamp(t, timezone.utc).year > 2037:
        return
    expected = datetime.fromtimestamp(t, ZoneInfo(name)).replace(tzinfo=None)
    assert tz.local(t) == expected
    assert t in tz.to_utc(tz.local(t))


WEEKDAY = DaySchedule.parse("00:00=A 07:00=B 11:00=C 17:00=B 21:00=A")
WEEKEND = DaySchedule.parse("00:00=A")
NIGHT_WRAP = DaySchedule.parse("06:00=B 22:00=D")
SUMMER = Season(6, 1, (WEEKDAY,) * 5 + (WEEKEND, WEEKEND, WEEKEND, NIGHT_WRAP))
WINTER = Season(11, 1, (NIGHT_WRAP,) * 5 + (WEEKEND,) * 4)
SHOULDER = Season(3, 1, (WEEKEND,) * 9)
CAL = TouCalendar((WINTER, SUMMER, SHOULDER),
                  {date(2024, 12, 25): HOLIDAY1, date(2024, 7, 4): HOLIDAY2}, first_year=2020)


def test_schedule_parsing_and_limits():
    assert WEEKDAY.switches == ((0, 0), (420, 1), (660, 2), (1020, 1), (1260, 0))
    assert WEEKDAY.text() == "00:00=A 07:00=B 11:00=C 17:00=B 21:00=A"
    with pytest.raises(ValueError, match="HH:MM=RATE"):
        DaySchedule.parse("07:00=J")
    with pytest.raises(ValueError, match="1..8"):
        DaySchedule.parse(" ".join(f"{h:02d}:00=A" for h in range(9)))
    with pytest.raises(ValueError, match="increasing"):
        DaySchedule.parse("10:00=A 09:00=B")
    with pytest.raises(ValueError, match="29 February"):
        Season(2, 29, (WEEKEND,) * 9)
    with pytest.raises(ValueError, match="outside the calendar"):
        TouCalendar((SHOULDER,), {date(2045, 1, 1): HOLIDAY1}, first_year=2020)


@pytest.mark.parametrize("local, season, day_type, rate", [
    (datetime(2024, 7, 2, 6, 59), 1, 1, "A"),        # Tuesday in summer, before 07:00
    (datetime(2024, 7, 2, 7, 0), 1, 1, "B"),
    (datetime(2024, 7, 2, 12, 30), 1, 1, "C"),
    (datetime(2024, 7, 2, 21, 0), 1, 1, "A"),
    (datetime(2024, 7, 4, 12, 0), 1, HOLIDAY2, "B"),  # holiday 2 in summer: 06:00=B 22:00=D
    (datetime(2024, 7, 4, 3, 0), 1, HOLIDAY2, "D"),   # before the first switch: the day's last rate
    (datetime(2024, 7, 6, 12, 0), 1, 5, "A"),         # Saturday
    (datetime(2024, 12, 25, 12, 0), 0, HOLIDAY1, "A"),
    (datetime(2024, 12, 24, 23, 0), 0, 1, "D"),       # winter Tuesday night
    (datetime(2024, 2, 29, 12, 0), 0, 3, "B"),        # leap day: still winter, a Thursday
    (datetime(2024, 3, 1, 12, 0), 2, 4, "A"),         # shoulder starts 1 March
    (datetime(2025, 1, 1, 0, 0), 0, 2, "D"),          # new year: winter carries over
])
def test_rates_by_hand(local, season, day_type, rate):
    st_ = CAL.state(local)
    assert (st_.season, st_.day_type, "ABCDEFGH"[st_.rate]) == (season, day_type, rate)


def test_calendar_years_and_override():
    assert CAL.state(datetime(2039, 12, 31, 12)).in_calendar
    outside = CAL.state(datetime(2040, 12, 25, 12))
    assert not outside.in_calendar and outside.day_type == date(2040, 12, 25).weekday()
    cal = TouCalendar((SUMMER,), override_rate=7)
    forced = cal.state(datetime(2024, 7, 2, 12), override=True)
    assert forced.rate == 7 and forced.overridden
    assert CAL.next_change(datetime(2024, 7, 2, 8, 15)) == datetime(2024, 7, 2, 11, 0)
    assert flat_calendar(3).state(datetime(2031, 5, 5, 5)).rate == 3


def test_rate_across_the_spring_and_autumn_dst_changes():
    cal = TouCalendar((Season(1, 1, (DaySchedule.parse("00:00=A 02:30=B 03:00=C"),) * 9),))
    # spring: 01:59:59 CET is followed by 03:00 CEST, rate B (02:30-03:00) never runs that day
    spring = [cal.state(CET.local(utc(2024, 3, 31, 0, 59, 59) + k)).rate for k in range(3)]
    assert spring == [0, 2, 2]
    # autumn: 02:00-03:00 local runs twice; B runs 02:30-03:00 both times
    seen = [cal.state(CET.local(utc(2024, 10, 27, 0) + 60 * k)).rate for k in range(0, 125)]
    runs = [r for i, r in enumerate(seen) if i == 0 or seen[i - 1] != r]
    assert runs == [0, 1, 0, 1, 2]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([CET, EASTERN, SYDNEY]), st.integers(0, 20 * 365 * 86400), st.integers(60, 3 * 86400),
       st.integers(-3 * 86400, 3 * 86400))
def test_energy_split_by_rate_sums_to_the_total_across_dst_and_clock_sets(tz, start_s, span_s, jump_s):
    """Per-second energy booked to the rate of its local time: rates always add up to the total, and
    each second's rate is the calendar's rate at that local time, whatever the clock did before."""
    t = utc(2021, 1, 1) + start_s
    per_rate = [0.0] * 8
    total = 0.0
    step = max(span_s // 97, 1)
    for k in range(0, span_s, step):
        if k == span_s // 2:
            t += jump_s                              # clock set forwards or backwards
        now = t + k
        local = tz.local(now)
        state = CAL.state(local)
        assert state.rate == CAL.seasons[state.season].days[state.day_type].rate_at(local.hour * 60 + local.minute)
        per_rate[state.rate] += 1.5
        total += 1.5
    assert sum(per_rate) == pytest.approx(total, rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.integers(2020, 2039), st.integers(0, 365), st.integers(0, 1439))
def test_day_type_is_weekday_unless_holiday_and_seasons_follow_start_dates(year, day, minute):
    d = date(year, 1, 1) + timedelta(days=day)
    local = datetime(d.year, d.month, d.day) + timedelta(minutes=minute)
    st_ = CAL.state(local)
    expected_type = CAL.holidays.get(d, d.weekday()) if CAL.in_calendar(d) else d.weekday()
    assert st_.day_type == expected_type
    md = (d.month, d.day)
    expected_season = 0 if md >= (11, 1) or md < (3, 1) else (1 if md >= (6, 1) else 2)
    assert st_.season == expected_season
    assert DAY_TYPES[st_.day_type]


def test_epoch_helpers_read_no_clock():
    assert epoch_seconds(datetime(1970, 1, 2)) == 86400.0
