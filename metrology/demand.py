"""Demand: block, rolling block (sliding window), thermal and predicted; peaks with coincident values.

Pure computation, time passed in (SPEC §3; ION p.247-252; JEM L755-800):

* ``WindowDemand`` is the block and rolling-block method. An interval of ``interval_s`` is made of
  ``n`` subintervals (``n * sub = interval``, ``n <= 12``; block demand is ``n = 1``). Each channel
  accumulates its integral (value x seconds: W·s, var·s, A·s, V·s) over the open subinterval; when a
  subinterval closes, demand = (sum of the last ``n`` subinterval integrals) / ``interval_s``. Time
  with no input (an outage, a clock jump forward) contributes zero, as the integral of a meter that
  was not metering does: demand is always energy over the nominal interval length.
* Predicted demand (ION "sliding window demand also provides predicted demand values") is the
  demand the window will show when the open subinterval closes if the rate seen so far in that
  subinterval continues: (last ``n-1`` integrals + open integral + rate x remaining) / interval.
* ``ThermalDemand`` is the exponential response of a thermal demand meter: a step reaches 90 % of
  its final value after the response time T (SPEC §3), so tau = T / ln(10).
* ``DemandClock`` decides when subintervals close: on the clock (aligned to multiples of the
  subinterval in the time scale it is given: the engine passes local standard time, so intervals
  align to the hour in every time zone), or free-running from the last synchronisation pulse
  (digital input or command, S4100 AV1=21211). A clock set backwards closes the open subinterval
  short and realigns; a jump forward closes it and counts the skipped subintervals as empty.
* ``PeakDemand`` keeps, per channel, the largest demand with its time and the demand of every
  other channel at that moment (coincident values; coincident PF is derived from them).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Allowed demand interval lengths, minutes (SPEC §3; JEM L792 "Demand Interval Length").
DEMAND_INTERVALS_MIN = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)
MAX_SUBINTERVALS = 12                 # JEM L792: "No more than 12 subintervals per interval"
THERMAL_RESPONSE_FRACTION = 0.90      # thermal demand: 90 % of a step within the response time (SPEC §3)
METHODS = ("block", "rolling", "thermal")


def check_interval(interval_s: int, subinterval_s: int) -> int:
    """Number of subintervals of a valid (interval, subinterval) pair; ValueError says what is allowed."""
    allowed = ", ".join(str(m) for m in DEMAND_INTERVALS_MIN)
    if interval_s % 60 or interval_s // 60 not in DEMAND_INTERVALS_MIN:
        raise ValueError(f"demand interval {interval_s} s is not allowed; allowed {allowed} min")
    if subinterval_s <= 0 or interval_s % subinterval_s:
        raise ValueError(f"demand subinterval {subinterval_s} s does not divide the interval of {interval_s} s")
    n = interval_s // subinterval_s
    if n > MAX_SUBINTERVALS:
        raise ValueError(f"{n} subintervals of {subinterval_s} s in {interval_s} s; at most {MAX_SUBINTERVALS}")
    return n


# --------------------------------------------------------------------------- block / rolling block


class WindowDemand:
    """Block (``n = 1``) or rolling-block demand of ``channels`` quantities."""

    def __init__(self, channels: int, interval_s: int, subinterval_s: int) -> None:
        self.n = check_interval(interval_s, subinterval_s)
        self.channels = channels
        self.interval_s = float(interval_s)
        self.subinterval_s = float(subinterval_s)
        self.open = np.zeros(channels)        # integral of the open subinterval (value x s)
        self.elapsed_s = 0.0                  # time accumulated into the open subinterval
        self.window: deque[np.ndarray] = deque(maxlen=self.n)   # closed subintervals, oldest first
        self.demand = np.zeros(channels)      # demand at the last closure
        self.closures = 0                     # subintervals closed since construction/reset

    def accumulate(self, integral: np.ndarray, dt_s: float) -> None:
        """Add ``integral`` (value x seconds, per channel) measured over ``dt_s`` seconds."""
        self.open += integral
        self.elapsed_s += dt_s

    def close(self, skipped: int = 0) -> np.ndarray:
        """Close the open subinterval (and ``skipped`` empty ones after it); the new demand."""
        self.window.append(self.open.copy())
        for _ in range(min(skipped, self.n)):
            self.window.append(np.zeros(self.channels))
        self.closures += 1 + skipped
        self.open[:] = 0.0
        self.elapsed_s = 0.0
        self.demand = np.sum(self.window, axis=0) / self.interval_s
        return self.demand.copy()

    @property
    def full(self) -> bool:
        """The window holds a whole interval of closed subintervals."""
        return len(self.window) == self.n

    def predicted(self) -> np.ndarray:
        """Demand at the end of the open subinterval if its rate so far continues."""
        older = list(self.window)[-(self.n - 1):] if self.n > 1 else []
        past = np.sum(older, axis=0) if older else np.zeros(self.channels)
        rate = self.open / self.elapsed_s if self.elapsed_s > 0 else np.zeros(self.channels)
        remaining = max(self.subinterval_s - self.elapsed_s, 0.0)
        return (past + self.open + rate * remaining) / self.interval_s

    def reset(self) -> None:
        self.open[:] = 0.0
        self.elapsed_s = 0.0
        self.window.clear()
        self.demand = np.zeros(self.channels)

    def state(self) -> dict[str, Any]:
        return {"open": self.open.tolist(), "elapsed_s": self.elapsed_s,
                "window": [w.tolist() for w in self.window], "demand": self.demand.tolist(),
                "closures": self.closures}

    def restore(self, state: dict[str, Any]) -> None:
        """Restore a ``state()``; silently ignored when the channel count no longer matches."""
        if len(state.get("open", ())) != self.channels:
            return
        self.open = np.array(state["open"], dtype=float)
        self.elapsed_s = float(state["elapsed_s"])
        self.window = deque((np.array(w, dtype=float) for w in state["window"][-self.n:]), maxlen=self.n)
        self.demand = np.array(state["demand"], dtype=float)
        self.closures = int(state.get("closures", 0))


# --------------------------------------------------------------------------- thermal


class ThermalDemand:
    """Exponential (thermal) demand: 90 % of a step after ``response_s``."""

    def __init__(self, channels: int, response_s: float) -> None:
        if response_s <= 0:
            raise ValueError(f"thermal response time must be positive, got {response_s}")
        self.response_s = float(response_s)
        self.tau_s = response_s / -math.log(1.0 - THERMAL_RESPONSE_FRACTION)
        self.value = np.zeros(channels)

    def update(self, mean_value: np.ndarray, dt_s: float) -> np.ndarray:
        """Advance by ``dt_s`` during which the input averaged ``mean_value``; the new demand."""
        alpha = 1.0 - math.exp(-dt_s / self.tau_s)
        self.value = self.value + (np.asarray(mean_value, dtype=float) - self.value) * alpha
        return self.value.copy()

    def reset(self) -> None:
        self.value[:] = 0.0

    def state(self) -> dict[str, Any]:
        return {"value": self.value.tolist()}

    def restore(self, state: dict[str, Any]) -> None:
        if len(state.get("value", ())) == len(self.value):
            self.value = np.array(state["value"], dtype=float)


# --------------------------------------------------------------------------- timing


@dataclass
class Closure:
    """What one clock step decided: ``close`` subintervals end now, ``skipped`` empty ones followed."""
    close: bool = False
    skipped: int = 0
    time_set: bool = False    # the clock went backwards: the subinterval closed short and realigned


class DemandClock:
    """When subintervals end: aligned to the clock, or free-running from the last sync pulse."""

    def __init__(self, subinterval_s: int, sync: str = "clock") -> None:
        if sync not in ("clock", "input", "command"):
            raise ValueError(f"demand sync {sync!r} is not one of 'clock', 'input', 'command'")
        self.sub_s = int(subinterval_s)
        self.sync = sync
        self.base_s = 0.0             # origin of the free-running schedule (last sync pulse)
        self.index: int | None = None

    def _index(self, t_s: float) -> int:
        origin = 0.0 if self.sync == "clock" else self.base_s
        return math.floor((t_s - origin) / self.sub_s)

    def step(self, t_s: float) -> Closure:
        """Call with the time of every second (monotonic apart from clock sets)."""
        idx = self._index(t_s)
        if self.index is None:
            self.index = idx
            return Closure()
        if idx == self.index:
            return Closure()
        if idx < self.index:
            self.index = idx
            return Closure(True, 0, True)
        skipped = idx - self.index - 1
        self.index = idx
        return Closure(True, skipped)

    def pulse(self, t_s: float) -> Closure:
        """A synchronisation pulse at ``t_s``: the open subinterval ends now."""
        if self.sync != "clock":
            self.base_s = float(t_s)
        self.index = self._index(t_s)
        return Closure(True)

    def remaining_s(self, t_s: float) -> float:
        """Seconds until the open subinterval ends."""
        origin = 0.0 if self.sync == "clock" else self.base_s
        return self.sub_s - ((t_s - origin) % self.sub_s)

    def state(self) -> dict[str, Any]:
        return {"base_s": self.base_s, "index": self.index}

    def restore(self, state: dict[str, Any]) -> None:
        self.base_s = float(state.get("base_s", 0.0))
        self.index = state.get("index")


# --------------------------------------------------------------------------- peaks


@dataclass
class PeakDemand:
    """Per-channel peak demand, its time and the demand of every channel at that moment."""
    channels: int
    value: np.ndarray = field(init=False)
    time_s: np.ndarray = field(init=False)
    coincident: np.ndarray = field(init=False)   # (channels, channels): row k = all demands at k's peak

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.value = np.zeros(self.channels)
        self.time_s = np.zeros(self.channels)
        self.coincident = np.zeros((self.channels, self.channels))

    def update(self, demand: np.ndarray, t_s: float, mask: np.ndarray | None = None) -> np.ndarray:
        """Take ``demand`` at ``t_s``; returns the mask of channels that set a new peak."""
        new = demand > self.value
        if mask is not None:
            new &= mask
        if new.any():
            self.value = np.where(new, demand, self.value)
            self.time_s = np.where(new, t_s, self.time_s)
            self.coincident[new] = demand
        return new

    def state(self) -> dict[str, Any]:
        return {"value": self.value.tolist(), "time_s": self.time_s.tolist(),
                "coincident": self.coincident.tolist()}

    def restore(self, state: dict[str, Any]) -> None:
        if len(state.get("value", ())) != self.channels:
            return
        self.value = np.array(state["value"], dtype=float)
        self.time_s = np.array(state["time_s"], dtype=float)
        self.coincident = np.array(state["coincident"], dtype=float).reshape(self.channels, self.channels)


def coincident_pf(p_demand: float, s_demand: float) -> float:
    """Average PF over the interval of a peak (JEM "Coincident Power Factor"): kW demand / kVA demand."""
    if s_demand <= 0.0:
        return math.nan
    return max(-1.0, min(1.0, p_demand / s_demand))
