"""The revenue engine's settings, built once from the ``[revenue*]`` configuration sections."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from hal.errors import ConfigError
from metrology.demand import check_interval
from metrology.registers import QUANTITIES, BillingSchedule
from metrology.tou import (
    DAY_TYPES,
    HOLIDAY1,
    HOLIDAY2,
    RATES,
    DaySchedule,
    DstRule,
    Season,
    TimeZone,
    TouCalendar,
    flat_calendar,
)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
AVERAGE_CHANNELS = {"avg_p": ("p", 3), "avg_q": ("q", 3), "avg_s": ("s", 3), "avg_pf": ("pf", 3),
                    "avg_freq": ("freq", 0), "avg_v_a": ("v_ln", 0), "avg_v_b": ("v_ln", 1),
                    "avg_v_c": ("v_ln", 2), "avg_i_a": ("i", 0), "avg_i_b": ("i", 1), "avg_i_c": ("i", 2)}
MAX_INPUT = 32


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _offset_min(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    return sign * _minutes(text[1:])


def _dst_rule(text: str) -> DstRule | None:
    if not text:
        return None
    month, week, weekday, hhmm = text.split("-")
    return DstRule(int(month), int(week), WEEKDAYS.index(weekday), _minutes(hhmm))


@dataclass(frozen=True)
class LpChannel:
    """One load-profile channel: ``kind`` consumption, average, status, pulse or contact."""
    name: str
    kind: str
    quantity: str = ""       # consumption: EnergyIncrement field; average: measurement key
    index: int = 3           # phase (0..2, 3 = total) or measurement index, or digital input number
    compensated: bool = False


def parse_lp_channel(name: str) -> LpChannel:
    if name == "status":
        return LpChannel(name, "status")
    for kind in ("pulse", "contact"):
        if name.startswith(kind) and name[len(kind):].isdigit() and 1 <= int(name[len(kind):]) <= MAX_INPUT:
            return LpChannel(name, kind, index=int(name[len(kind):]))
    if name in AVERAGE_CHANNELS:
        key, idx = AVERAGE_CHANNELS[name]
        return LpChannel(name, "average", key, idx)
    base, _, phase = name.partition(".")
    comp = base.endswith("_comp")
    base = base[:-5] if comp else base
    if base in QUANTITIES and phase in ("", "a", "b", "c"):
        return LpChannel(name, "consumption", base, "abc".index(phase) if phase else 3, comp)
    raise ValueError(f"load-profile channel {name!r} is not known; use an energy register "
                     f"({', '.join(QUANTITIES[:4])}, ... optionally .a/.b/.c and _comp), "
                     f"{', '.join(AVERAGE_CHANNELS)}, status, pulseN or contactN")


@dataclass(frozen=True)
class RevenueSettings:
    method: str = "rolling"
    interval_s: int = 900
    subinterval_s: int = 300
    sync: str = "clock"
    deferral_s: float = 0.0
    reset_lockout_s: float = 300.0
    reset_when_locked: bool = False
    persist_interval_s: float = 1.0
    test_mode_timeout_s: float = 1800.0
    bpr_schedule: BillingSchedule = field(default_factory=BillingSchedule)
    self_read_triggers: tuple[str, ...] = ("bpr",)
    secondary_units: bool = False
    publish_compensated: bool = False
    incremental: tuple[int, int, int] = (0, 1440, 60)      # start, end, interval (minutes; 0 = off)
    timezone: TimeZone = field(default_factory=TimeZone)
    tou_enabled: bool = False
    calendar: TouCalendar = field(default_factory=flat_calendar)
    lp_interval_s: int = 900
    lp_channels: tuple[LpChannel, ...] = tuple(parse_lp_channel(n) for n in ("wh_del", "wh_rec", "status"))
    lp_depth: int = 40_000
    pt_ratio: float = 1.0
    ct_ratio: float = 1.0

    def __post_init__(self) -> None:
        check_interval(self.interval_s, self.subinterval_s)

    def lp_signature(self) -> str:
        """Changes when the load profile's layout changes (its data is then cleared, as JEM L1495 does)."""
        text = json.dumps([self.lp_interval_s, [c.name for c in self.lp_channels]])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def signature(self) -> str:
        """Changes with any setting that affects registration (a configuration-change event)."""
        text = repr((self.method, self.interval_s, self.subinterval_s, self.sync, self.timezone,
                     self.tou_enabled, self.calendar, self.pt_ratio, self.ct_ratio))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _calendar(tou: Any) -> TouCalendar:
    seasons = []
    for i, entry in enumerate(tou.season):
        try:
            month, day = (int(x) for x in entry.start.split("-"))
            days = tuple(DaySchedule.parse(getattr(entry, name)) for name in DAY_TYPES)
            seasons.append(Season(month, day, days))
        except ValueError as exc:
            raise ConfigError(f"config: [revenue.tou] season {i}: {exc}") from None
    holidays: dict[date, int] = {}
    for i, entry in enumerate(tou.holiday):
        try:
            holidays[date.fromisoformat(entry.date)] = HOLIDAY1 if entry.type == "holiday1" else HOLIDAY2
        except ValueError as exc:
            raise ConfigError(f"config: [revenue.tou] holiday {i}: {exc}") from None
    if not seasons:
        seasons = list(flat_calendar().seasons)
    try:
        return TouCalendar(tuple(seasons), holidays, tou.first_year, override_rate=RATES.index(tou.override_rate))
    except ValueError as exc:
        raise ConfigError(f"config: [revenue.tou] {exc}") from None


def from_config(config: Any, pt_ratio: float = 1.0, ct_ratio: float = 1.0) -> RevenueSettings:
    """Settings from a loaded ``Config``; ConfigError names the section and option at fault."""
    rev, tim, tou, lp = (config[name] for name in ("revenue", "revenue.time", "revenue.tou", "revenue.load_profile"))
    interval_s = rev.demand_interval * 60
    n = 1 if rev.demand_method == "block" else rev.demand_subintervals
    if interval_s % n:
        raise ConfigError(f"config: [revenue] option 'demand_subintervals': {n} does not divide the "
                          f"{rev.demand_interval}-min interval into whole seconds")
    try:
        check_interval(interval_s, interval_s // n)
    except ValueError as exc:
        raise ConfigError(f"config: [revenue] option 'demand_subintervals': {exc}") from None
    try:
        tz = TimeZone(_offset_min(tim.zone), _offset_min(tim.dst_offset), _dst_rule(tim.dst_start),
                      _dst_rule(tim.dst_end))
    except ValueError as exc:
        raise ConfigError(f"config: [revenue.time] {exc}") from None
    try:
        channels = tuple(parse_lp_channel(name) for name in lp.channels)
    except ValueError as exc:
        raise ConfigError(f"config: [revenue.load_profile] option 'channels': {exc}") from None
    if len({c.name for c in channels}) != len(channels):
        raise ConfigError("config: [revenue.load_profile] option 'channels': a channel is listed twice")
    end = 1440 if rev.incremental_end == "24:00" else _minutes(rev.incremental_end)
    if rev.incremental_interval and _minutes(rev.incremental_start) >= end:
        raise ConfigError("config: [revenue] option 'incremental_start': must be before incremental_end")
    return RevenueSettings(
        method=rev.demand_method, interval_s=interval_s, subinterval_s=interval_s // n, sync=rev.demand_sync,
        deferral_s=rev.demand_deferral, reset_lockout_s=rev.demand_reset_lockout,
        reset_when_locked=rev.demand_reset_when_locked, persist_interval_s=rev.persist_interval,
        test_mode_timeout_s=rev.test_mode_timeout,
        bpr_schedule=BillingSchedule(rev.bpr_day, _minutes(rev.bpr_time)),
        self_read_triggers=tuple(rev.self_read_triggers), secondary_units=rev.units == "secondary",
        publish_compensated=rev.publish_compensated,
        incremental=(_minutes(rev.incremental_start), end, rev.incremental_interval),
        timezone=tz, tou_enabled=tou.enabled, calendar=_calendar(tou),
        lp_interval_s=lp.interval * 60, lp_channels=channels, lp_depth=lp.depth,
        pt_ratio=pt_ratio, ct_ratio=ct_ratio)
