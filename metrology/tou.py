"""Time of use: time zone and DST rules, seasons, day types, holidays, rates A-H, override.

Pure computation on times passed in as UTC seconds (SPEC §3; JEM L809-817; ION p.280):

* ``TimeZone``: a fixed offset from UTC (-12:00 ... +13:00) and an optional DST offset
  (-3:00 ... +3:00) with start and end rules of the form "week n (1-4, or 5 = last) weekday of a
  month at a local time", the form meters configure (e.g. EU: last Sunday of March 01:00 UTC,
  US: second Sunday of March 02:00). The start time is read on the standard clock, the end time on
  the daylight clock, as the rules are written. A rule whose start falls after its end in the
  calendar year (southern hemisphere) means DST spans the new year. No tz database is read.
* ``TouCalendar``: up to 4 seasons, each starting on a month/day and giving one day schedule for
  each of 9 day types (Monday ... Sunday, holiday 1, holiday 2); a day schedule is up to 8 switch
  times, each naming the rate (A-H) from that minute on; before the first switch of a day the
  last rate of the same schedule applies (a schedule repeats daily). Up to 200 holidays, each on a
  date within a 20-year calendar; outside the calendar years no holidays apply and the state says
  so (``in_calendar``). An override input forces one rate.

Everything is a function of local time, so TOU is right across DST changes and leap days and after a
clock set in either direction: there is no state to go wrong.
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

RATES = "ABCDEFGH"                      # SPEC §3: rates A-H plus total
RATE_TOTAL = len(RATES)                 # index of the total register next to the rates
DAY_TYPES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
             "holiday1", "holiday2")    # JEM L814: 7 weekdays + 2 holiday types
HOLIDAY1, HOLIDAY2 = 7, 8
MAX_SEASONS = 4
MAX_SWITCHES = 8                        # JEM L817: up to eight rate changes per day type
MAX_HOLIDAYS = 200                      # JEM L815
CALENDAR_YEARS = 20                     # JEM L815: twenty-year calendar
TZ_MIN_MIN, TZ_MAX_MIN = -12 * 60, 13 * 60   # SPEC §3: time zone -12:00 ... +13:00
DST_MIN_MIN, DST_MAX_MIN = -3 * 60, 3 * 60   # SPEC §3: DST offset -3:00 ... +3:00
MIN_PER_DAY = 1440
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def utc_datetime(t_s: float) -> datetime:
    """Naive datetime of ``t_s`` seconds after the epoch (no clock or tz database involved)."""
    return (_EPOCH + timedelta(seconds=t_s)).replace(tzinfo=None)


def epoch_seconds(naive: datetime) -> float:
    return (naive.replace(tzinfo=timezone.utc) - _EPOCH).total_seconds()


# --------------------------------------------------------------------------- time zone and DST


@dataclass(frozen=True)
class DstRule:
    month: int          # 1..12
    week: int           # 1..4, or 5 for the last such weekday of the month
    weekday: int        # 0 = Monday ... 6 = Sunday
    minute: int         # minutes after local midnight, on the clock in force before the change

    def __post_init__(self) -> None:
        if not (1 <= self.month <= 12 and 1 <= self.week <= 5 and 0 <= self.weekday <= 6
                and 0 <= self.minute < MIN_PER_DAY):
            raise ValueError(f"DST rule {self} out of range (month 1-12, week 1-5, weekday 0-6, minute 0-1439)")

    def day(self, year: int) -> date:
        first = date(year, self.month, 1)
        offset = (self.weekday - first.weekday()) % 7
        if self.week < 5:
            return first + timedelta(days=offset + 7 * (self.week - 1))
        last = date(year, self.month, calendar.monthrange(year, self.month)[1])
        return last - timedelta(days=(last.weekday() - self.weekday) % 7)


@dataclass(frozen=True)
class TimeZone:
    offset_min: int = 0
    dst_offset_min: int = 0
    dst_start: DstRule | None = None
    dst_end: DstRule | None = None

    def __post_init__(self) -> None:
        if not TZ_MIN_MIN <= self.offset_min <= TZ_MAX_MIN:
            raise ValueError(f"time zone offset {self.offset_min} min is outside -12:00..+13:00")
        if not DST_MIN_MIN <= self.dst_offset_min <= DST_MAX_MIN:
            raise ValueError(f"DST offset {self.dst_offset_min} min is outside -3:00..+3:00")
        if (self.dst_start is None) != (self.dst_end is None):
            raise ValueError("DST needs both a start and an end rule, or neither")

    @property
    def has_dst(self) -> bool:
        return self.dst_start is not None and self.dst_offset_min != 0

    def transitions(self, year: int) -> tuple[float, float]:
        """UTC seconds of the DST start and end in ``year``."""
        assert self.dst_start is not None and self.dst_end is not None
        s_day, e_day = self.dst_start.day(year), self.dst_end.day(year)
        start = epoch_seconds(datetime(s_day.year, s_day.month, s_day.day)) + self.dst_start.minute * 60
        end = epoch_seconds(datetime(e_day.year, e_day.month, e_day.day)) + self.dst_end.minute * 60
        return start - self.offset_min * 60, end - (self.offset_min + self.dst_offset_min) * 60

    def is_dst(self, utc_s: float) -> bool:
        if not self.has_dst:
            return False
        year = utc_datetime(utc_s + self.offset_min * 60).year
        start, end = self.transitions(year)
        if start < end:
            return start <= utc_s < end
        return utc_s >= start or utc_s < end

    def utc_offset_s(self, utc_s: float) -> int:
        return (self.offset_min + (self.dst_offset_min if self.is_dst(utc_s) else 0)) * 60

    def local(self, utc_s: float) -> datetime:
        """Local wall-clock time (naive)."""
        return utc_datetime(utc_s + self.utc_offset_s(utc_s))

    def standard_s(self, utc_s: float) -> float:
        """Seconds on the local standard clock (no DST): the time scale intervals align to."""
        return utc_s + self.offset_min * 60

    def to_utc(self, local: datetime) -> list[float]:
        """UTC instants showing ``local`` on the wall clock: none (spring gap), one, or two (autumn overlap)."""
        out = []
        base = epoch_seconds(local)
        offsets = {self.offset_min, self.offset_min + self.dst_offset_min}
        for off in sorted(offsets, reverse=True):
            utc = base - off * 60
            if self.utc_offset_s(utc) == off * 60:
                out.append(utc)
        return sorted(out)


# --------------------------------------------------------------------------- schedules


_SWITCH_RE = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)=([A-Ha-h])")


@dataclass(frozen=True)
class DaySchedule:
    switches: tuple[tuple[int, int], ...]      # (minute of day, rate index 0..7), sorted

    def __post_init__(self) -> None:
        if not 1 <= len(self.switches) <= MAX_SWITCHES:
            raise ValueError(f"a day schedule has 1..{MAX_SWITCHES} switch times, got {len(self.switches)}")
        minutes = [m for m, _ in self.switches]
        if minutes != sorted(set(minutes)):
            raise ValueError("switch times must be in increasing order, each once")
        for m, r in self.switches:
            if not (0 <= m < MIN_PER_DAY and 0 <= r < len(RATES)):
                raise ValueError(f"switch ({m}, {r}) out of range")

    @classmethod
    def parse(cls, text: str) -> DaySchedule:
        """``"00:00=A 07:00=B 19:00=A"``: each switch is HH:MM=RATE, separated by spaces or commas."""
        items = [x for x in re.split(r"[\s,]+", text.strip()) if x]
        switches = []
        for item in items:
            m = _SWITCH_RE.fullmatch(item)
            if not m:
                raise ValueError(f"switch {item!r} is not HH:MM=RATE with RATE one of A-H")
            switches.append((int(m.group(1)) * 60 + int(m.group(2)), RATES.index(m.group(3).upper())))
        return cls(tuple(switches))

    def text(self) -> str:
        return " ".join(f"{m // 60:02d}:{m % 60:02d}={RATES[r]}" for m, r in self.switches)

    def rate_at(self, minute: int) -> int:
        rate = self.switches[-1][1]
        for m, r in self.switches:
            if m > minute:
                break
            rate = r
        return rate


@dataclass(frozen=True)
class Season:
    start_month: int
    start_day: int
    days: tuple[DaySchedule, ...]              # one per DAY_TYPES entry

    def __post_init__(self) -> None:
        if len(self.days) != len(DAY_TYPES):
            raise ValueError(f"a season needs {len(DAY_TYPES)} day schedules ({', '.join(DAY_TYPES)})")
        if (self.start_month, self.start_day) == (2, 29):
            raise ValueError("a season cannot start on 29 February (it would not start in common years)")
        date(2001, self.start_month, self.start_day)   # ValueError for impossible dates


@dataclass(frozen=True)
class TouState:
    season: int          # 0-based index into the configured seasons
    day_type: int        # index into DAY_TYPES
    rate: int            # 0..7 = A..H
    in_calendar: bool    # the date lies inside the 20-year calendar
    overridden: bool = False


@dataclass(frozen=True)
class TouCalendar:
    seasons: tuple[Season, ...]
    holidays: dict[date, int] = field(default_factory=dict)   # date -> HOLIDAY1 or HOLIDAY2
    first_year: int = 2020
    years: int = CALENDAR_YEARS
    override_rate: int = 0

    def __post_init__(self) -> None:
        if not 1 <= len(self.seasons) <= MAX_SEASONS:
            raise ValueError(f"TOU needs 1..{MAX_SEASONS} seasons, got {len(self.seasons)}")
        starts = [(s.start_month, s.start_day) for s in self.seasons]
        if len(set(starts)) != len(starts):
            raise ValueError("two seasons start on the same day")
        if len(self.holidays) > MAX_HOLIDAYS:
            raise ValueError(f"{len(self.holidays)} holidays; at most {MAX_HOLIDAYS}")
        for d, kind in self.holidays.items():
            if kind not in (HOLIDAY1, HOLIDAY2):
                raise ValueError(f"holiday {d}: type must be holiday1 or holiday2")
            if not self.first_year <= d.year < self.first_year + self.years:
                raise ValueError(f"holiday {d} lies outside the calendar years "
                                 f"{self.first_year}..{self.first_year + self.years - 1}")
        if not 0 <= self.override_rate < len(RATES):
            raise ValueError("override rate must be one of A-H")

    def season_at(self, d: date) -> int:
        order = sorted(range(len(self.seasons)), key=lambda i: (self.seasons[i].start_month,
                                                                  self.seasons[i].start_day))
        current = order[-1]                     # before the first start of the year: last season goes on
        for i in order:
            s = self.seasons[i]
            if (d.month, d.day) >= (s.start_month, s.start_day):
                current = i
        return current

    def in_calendar(self, d: date) -> bool:
        return self.first_year <= d.year < self.first_year + self.years

    def day_type(self, d: date) -> int:
        if self.in_calendar(d) and d in self.holidays:
            return self.holidays[d]
        return d.weekday()

    def state(self, local: datetime, override: bool = False) -> TouState:
        d = local.date()
        season = self.season_at(d)
        kind = self.day_type(d)
        minute = local.hour * 60 + local.minute
        rate = self.override_rate if override else self.seasons[season].days[kind].rate_at(minute)
        return TouState(season, kind, rate, self.in_calendar(d), override)

    def next_change(self, local: datetime, limit_days: int = 2) -> datetime | None:
        """First local minute after ``local`` at which the rate differs (searching ``limit_days``)."""
        here = self.state(local).rate
        t = local.replace(second=0, microsecond=0)
        for _ in range(limit_days * MIN_PER_DAY):
            t += timedelta(minutes=1)
            if self.state(t).rate != here:
                return t
        return None


def flat_calendar(rate: int = 0) -> TouCalendar:
    """One season, every day type on one rate: what a meter without a TOU schedule bills."""
    day = DaySchedule(((0, rate),))
    return TouCalendar((Season(1, 1, (day,) * len(DAY_TYPES)),))
