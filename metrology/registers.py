"""Revenue register storage: energy by phase and TOU rate, storage types, min/max/average, schedules.

Pure computation, time passed in (SPEC §3; JEM L770-805, L355-365; ION p.253-257):

* ``EnergyBank`` holds every quantity of ``metrology.energy.EnergyIncrement`` (four-quadrant Wh,
  varh, VAh, Qh, Ah, V²h, I²h, delivered and received) for phases a, b, c and the total, and the
  total again for each TOU rate A-H, uncompensated and compensated: one array ``(2, Q, 12)``.
  Net and absolute registers are derived (delivered -/+ received), never stored.
* Storage types: *working* (the live registers), *BPR* (snapshot at each billing-period reset),
  *season* (snapshot at each TOU season change), *freeze* (snapshot on command), *cumulative*
  demand (each reset adds the peak to it), *continuous cumulative* (cumulative + present peak),
  *previous hour* and *previous day* (energy of the last complete local hour/day).
* ``MinMaxAvg``: min/max with time stamps and the time-weighted average, reset at BPR.
* Schedules decide from (previous, present) local time whether something falls due in between:
  self-read triggers, the billing-period reset schedule, incremental energy intervals.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from metrology.energy import EnergyIncrement
from metrology.tou import RATES

QUANTITIES: tuple[str, ...] = EnergyIncrement.quantities()
PHASES = ("a", "b", "c", "total")
TOTAL = 3                                  # phase index of the total in EnergyIncrement arrays
RATE_SLOT0 = len(PHASES)                   # slots 4..11: total energy booked to rates A..H
SLOTS = len(PHASES) + len(RATES)
UNCOMP, COMP = 0, 1
SELF_READ_DEPTH = 96                       # JEM L804: up to the 96 most recent self-read records
SELF_READ_TRIGGERS = ("interval", "hourly", "daily", "weekly", "monthly", "bpr")

# Unit of each register family; secondary = primary / (PT ratio ** pt_power * CT ratio ** ct_power)
FAMILY_SCALING = {"wh": (1, 1), "varh": (1, 1), "vah": (1, 1), "qh": (1, 1), "ah": (0, 1),
                  "v2h": (2, 0), "i2h": (0, 2)}


def family(quantity: str) -> str:
    return quantity.split("_")[0]


def secondary_factor(quantity: str, pt_ratio: float, ct_ratio: float) -> float:
    """Multiply a primary register by this to read it in secondary (meter terminal) units."""
    pt_pow, ct_pow = FAMILY_SCALING[family(quantity)]
    return 1.0 / (pt_ratio ** pt_pow * ct_ratio ** ct_pow)


class EnergyBank:
    """Energy registers: ``values[comp, quantity, slot]`` in primary units (Wh, varh, VAh, Ah, V²h, I²h)."""

    def __init__(self) -> None:
        self.values = np.zeros((2, len(QUANTITIES), SLOTS))

    def add(self, inc: EnergyIncrement, comp: EnergyIncrement | None, rate: int | None) -> None:
        """Book one increment; ``rate`` (0..7) also books the total to that rate's register."""
        for c, src in ((UNCOMP, inc), (COMP, comp if comp is not None else inc)):
            for q, name in enumerate(QUANTITIES):
                arr = getattr(src, name)
                self.values[c, q, :RATE_SLOT0] += arr
                if rate is not None:
                    self.values[c, q, RATE_SLOT0 + rate] += arr[TOTAL]

    def get(self, quantity: str, slot: int = TOTAL, compensated: bool = False) -> float:
        return float(self.values[COMP if compensated else UNCOMP, QUANTITIES.index(quantity), slot])

    def set(self, quantity: str, value: float, slot: int = TOTAL, compensated: bool = False) -> None:
        self.values[COMP if compensated else UNCOMP, QUANTITIES.index(quantity), slot] = value

    def total_vector(self) -> np.ndarray:
        """Uncompensated totals of every quantity (the vector previous-hour/day registers difference)."""
        return self.values[UNCOMP, :, TOTAL].copy()

    def copy(self) -> EnergyBank:
        out = EnergyBank()
        out.values = self.values.copy()
        return out

    def clear(self) -> None:
        self.values[:] = 0.0

    def state(self) -> list[Any]:
        return self.values.tolist()

    @classmethod
    def from_state(cls, state: list[Any]) -> EnergyBank:
        out = cls()
        arr = np.array(state, dtype=float)
        if arr.shape == out.values.shape:
            out.values = arr
        return out


def average_pf(wh_now: float, wh_then: float, vah_now: float, vah_then: float) -> float:
    """Average PF since a reset = ΣWh / ΣVAh over the period (JEM L780); NaN with no VAh yet."""
    vah = vah_now - vah_then
    return (wh_now - wh_then) / vah if vah > 0 else math.nan


# --------------------------------------------------------------------------- previous hour / day


class PeriodDelta:
    """Energy of the last complete period (hour or day): the registers' difference across it."""

    def __init__(self, size: int) -> None:
        self.key: Any = None
        self.start = np.zeros(size)
        self.previous = np.zeros(size)

    def update(self, key: Any, registers: np.ndarray) -> bool:
        """Call every second with the period key (e.g. local date and hour); True when a period closed."""
        if self.key is None:
            self.key, self.start = key, registers.copy()
            return False
        if key == self.key:
            return False
        self.previous = registers - self.start
        self.key, self.start = key, registers.copy()
        return True

    def state(self) -> dict[str, Any]:
        return {"key": self.key, "start": self.start.tolist(), "previous": self.previous.tolist()}

    def restore(self, state: dict[str, Any]) -> None:
        if len(state.get("start", ())) == len(self.start):
            self.key = state["key"] if not isinstance(state["key"], list) else tuple(state["key"])
            self.start = np.array(state["start"], dtype=float)
            self.previous = np.array(state["previous"], dtype=float)


# --------------------------------------------------------------------------- min / max / average


class MinMaxAvg:
    """Minimum and maximum with their times, and the time-weighted average, of named values."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.reset(0.0)

    def reset(self, t_s: float) -> None:
        n = len(self.names)
        self.min = np.full(n, math.inf)
        self.max = np.full(n, -math.inf)
        self.min_t = np.zeros(n)
        self.max_t = np.zeros(n)
        self.sum = np.zeros(n)
        self.seconds = np.zeros(n)
        self.since_s = t_s

    def update(self, values: np.ndarray, t_s: float, dt_s: float = 1.0) -> None:
        ok = np.isfinite(values)
        lower = ok & (values < self.min)
        upper = ok & (values > self.max)
        self.min = np.where(lower, values, self.min)
        self.min_t = np.where(lower, t_s, self.min_t)
        self.max = np.where(upper, values, self.max)
        self.max_t = np.where(upper, t_s, self.max_t)
        self.sum += np.where(ok, values * dt_s, 0.0)
        self.seconds += np.where(ok, dt_s, 0.0)

    def average(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.seconds > 0, self.sum / self.seconds, math.nan)

    def table(self) -> dict[str, dict[str, float]]:
        avg = self.average()
        out = {}
        for i, name in enumerate(self.names):
            seen = math.isfinite(self.min[i])
            out[name] = {"min": float(self.min[i]) if seen else math.nan, "min_time": float(self.min_t[i]),
                         "max": float(self.max[i]) if seen else math.nan, "max_time": float(self.max_t[i]),
                         "avg": float(avg[i])}
        return out

    def state(self) -> dict[str, Any]:
        def enc(a: np.ndarray) -> list[float | None]:
            return [float(x) if math.isfinite(x) else None for x in a]
        return {"names": list(self.names), "min": enc(self.min), "max": enc(self.max),
                "min_t": self.min_t.tolist(), "max_t": self.max_t.tolist(), "sum": self.sum.tolist(),
                "seconds": self.seconds.tolist(), "since_s": self.since_s}

    def restore(self, state: dict[str, Any]) -> None:
        if tuple(state.get("names", ())) != self.names:
            return
        self.min = np.array([math.inf if x is None else x for x in state["min"]], dtype=float)
        self.max = np.array([-math.inf if x is None else x for x in state["max"]], dtype=float)
        for key in ("min_t", "max_t", "sum", "seconds"):
            setattr(self, key, np.array(state[key], dtype=float))
        self.since_s = float(state["since_s"])


# --------------------------------------------------------------------------- schedules


def self_read_due(triggers: tuple[str, ...], prev: datetime, now: datetime, interval_closed: bool,
                  bpr: bool) -> list[str]:
    """Which self-read triggers fire between local times ``prev`` and ``now`` (JEM L805)."""
    fired = []
    if "interval" in triggers and interval_closed:
        fired.append("interval")
    if "hourly" in triggers and (prev.date(), prev.hour) != (now.date(), now.hour):
        fired.append("hourly")
    if "daily" in triggers and prev.date() != now.date():
        fired.append("daily")
    if "weekly" in triggers and prev.isocalendar()[:2] != now.isocalendar()[:2]:
        fired.append("weekly")
    if "monthly" in triggers and (prev.year, prev.month) != (now.year, now.month):
        fired.append("monthly")
    if "bpr" in triggers and bpr:
        fired.append("bpr")
    return fired


def _month_day(year: int, month: int, day: int) -> date:
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day, last))


@dataclass(frozen=True)
class BillingSchedule:
    """Automatic billing-period reset on a day of the month (29-31 fall back to the month's last day)."""
    day: int = 0            # 0 = no scheduled reset
    minute: int = 0         # local minute of the day

    def due(self, prev: datetime, now: datetime, last_key: str | None) -> str | None:
        """The period key ("YYYY-MM") when a scheduled reset falls in (prev, now] and has not run."""
        if self.day == 0 or now <= prev:
            return None
        d = _month_day(now.year, now.month, self.day)
        when = datetime(d.year, d.month, d.day) + timedelta(minutes=self.minute)
        key = f"{now.year:04d}-{now.month:02d}"
        if prev < when <= now and key != last_key:
            return key
        if now - prev > timedelta(days=1) and when <= now and key != last_key:
            return key               # the clock jumped over it (or the meter was off): catch up once
        return None


class IncrementalEnergy:
    """ION incremental energy (p.253): daily window [start, end) cut into intervals; previous and present."""

    def __init__(self, size: int, start_min: int, end_min: int, interval_min: int) -> None:
        if not 0 <= start_min < end_min <= 1440 or interval_min <= 0:
            raise ValueError("incremental energy needs 0 <= start < end <= 24:00 and a positive interval")
        self.start_min, self.end_min, self.interval_min = start_min, end_min, interval_min
        self.present = np.zeros(size)
        self.previous = np.zeros(size)
        self.key: tuple[str, int] | None = None

    def _key(self, local: datetime) -> tuple[str, int] | None:
        minute = local.hour * 60 + local.minute
        if not self.start_min <= minute < self.end_min:
            return None
        return (local.date().isoformat(), (minute - self.start_min) // self.interval_min)

    def add(self, local: datetime, energy: np.ndarray) -> bool:
        """Book one second's energy at local time; True when an interval closed."""
        key = self._key(local)
        closed = False
        if key != self.key and self.key is not None:
            self.previous, self.present = self.present, np.zeros_like(self.present)
            closed = True
        self.key = key
        if key is not None:
            self.present = self.present + energy
        return closed

    def state(self) -> dict[str, Any]:
        return {"present": self.present.tolist(), "previous": self.previous.tolist(),
                "key": list(self.key) if self.key else None}

    def restore(self, state: dict[str, Any]) -> None:
        if len(state.get("present", ())) == len(self.present):
            self.present = np.array(state["present"], dtype=float)
            self.previous = np.array(state["previous"], dtype=float)
            self.key = tuple(state["key"]) if state.get("key") else None  # type: ignore[assignment]
