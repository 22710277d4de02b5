"""Time quality from chrony's tracking state, the time events a change of it makes, and the priority rule.

No I/O and no clock reads: the state, the settings and ``now`` are passed in (tests feed them by hand).

Quality (``time_quality``): 0 not synchronised (chrony has no reference, stratum 16, leap status "Not
synchronised", or chrony cannot be asked), 1 degraded (chrony follows a source, but one threshold of
``[time]`` is crossed: offset, root distance, stratum or the age of the last update), 2 synchronised.
``time_synced`` is 1 only at 2. The offset judged is the larger of the offset still being slewed away
and the correction at the last update: a clock that was just stepped, or that could not be stepped, is
not synchronised until an update finds it right.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from firmware.timesync.chrony import Tracking

UNSYNCHRONISED, DEGRADED, SYNCHRONISED = 0, 1, 2
QUALITY_NAMES = {UNSYNCHRONISED: "unsynchronised", DEGRADED: "degraded", SYNCHRONISED: "synchronised"}
# Every time event, with when it is recorded (docs/time.md is generated from this table).
EVENTS = {
    "sync": "the clock became synchronised (quality 2)",
    "degraded": "chrony follows a source but a `[time]` threshold is crossed (reasons in `info`)",
    "unsync": "chrony has no synchronised source, or cannot be asked",
    "step": "a clock update found an offset of at least `step_threshold`: chrony steps it (one event per step)",
    "slew": "a clock update corrected at least `log_threshold` by slewing",
    "source": "chrony switched to another reference (`info.from`, `info.to`)",
    "leap": "a leap second is announced",
    "clock_set": "the system clock jumped against the monotonic clock between two polls (by anyone)",
    "time_set": "a protocol or manual time set was handed to chrony",
    "time_set_refused": "a time set was refused by `[time] priority` (`info.reason`)",
}


@dataclass(frozen=True)
class Limits:
    max_offset: float = 0.1
    max_error: float = 0.5
    max_stratum: int = 10
    max_age: float = 3600.0
    step_threshold: float = 1.0
    log_threshold: float = 0.01

    @classmethod
    def from_config(cls, section: Any) -> Limits:
        return cls(section.max_offset, section.max_error, section.max_stratum, section.max_age,
                   section.step_threshold, section.log_threshold)


def offset_of(t: Tracking) -> float:
    return max(abs(t.system_offset), abs(t.last_offset))


def assess(t: Tracking | None, limits: Limits, now_utc: float) -> tuple[int, list[str]]:
    """(quality, reasons it is not synchronised)."""
    if t is None:
        return UNSYNCHRONISED, ["chrony not reachable"]
    if t.leap_code == 3 or t.stratum <= 0 or t.stratum >= 16 or t.ref_time <= 0:
        return UNSYNCHRONISED, ["chrony has no synchronised source"]
    reasons = []
    if offset_of(t) > limits.max_offset:
        reasons.append(f"offset {offset_of(t):.6f} s > {limits.max_offset:g} s")
    if t.root_distance > limits.max_error:
        reasons.append(f"root distance {t.root_distance:.6f} s > {limits.max_error:g} s")
    if t.stratum > limits.max_stratum:
        reasons.append(f"stratum {t.stratum} > {limits.max_stratum}")
    age = now_utc - t.ref_time
    if age > limits.max_age:
        reasons.append(f"last update {age:.0f} s ago > {limits.max_age:g} s")
    return (DEGRADED if reasons else SYNCHRONISED), reasons


def snapshot_values(t: Tracking | None, quality: int, now_utc: float) -> dict[str, float]:
    nan = math.nan
    return {"time_synced": 1.0 if quality == SYNCHRONISED else 0.0, "time_quality": float(quality),
            "time_offset": (t.last_offset if abs(t.last_offset) > abs(t.system_offset) else t.system_offset)
            if t else nan,
            "time_stratum": float(t.stratum) if t else nan, "time_root_distance": t.root_distance if t else nan,
            "time_leap": float(t.leap_code) if t else 3.0,
            "time_ref_age": now_utc - t.ref_time if t and t.ref_time > 0 else nan}


@dataclass
class Event:
    event: str          # a key of EVENTS
    offset: float
    info: dict[str, Any] = field(default_factory=dict)


class Watch:
    """Turns successive tracking states into time events (one per change, not one per poll)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.quality: int | None = None
        self.ref_time = 0.0
        self.ref_id = ""
        self.leap = "Normal"
        self.last_step: float | None = None   # offset of the open step episode (None: no step in progress)

    def update(self, t: Tracking | None, now_utc: float, wall_jump: float = 0.0) -> tuple[int, list[Event]]:
        quality, reasons = assess(t, self.limits, now_utc)
        events: list[Event] = []
        lim = self.limits
        if abs(wall_jump) >= max(lim.step_threshold / 2, lim.log_threshold, 0.001):
            events.append(Event("clock_set", wall_jump, {"detail": "the system clock jumped against the "
                                                                   "monotonic clock"}))
        if t is not None and t.ref_time > 0 and t.ref_time != self.ref_time:
            # a new clock update from chrony: what it did with the correction
            off = t.last_offset
            if abs(off) >= lim.step_threshold:
                # one event per episode: updates that keep finding a step-sized offset (the step not yet
                # applied, or chrony's filter still settling) belong to the step already logged
                if self.last_step is None:
                    events.append(Event("step", off, {"source": t.ref_name, "stratum": t.stratum}))
                self.last_step = off
            else:
                self.last_step = None
                if abs(off) >= lim.log_threshold and lim.log_threshold > 0:
                    events.append(Event("slew", off, {"source": t.ref_name, "stratum": t.stratum}))
            if self.ref_id and t.ref_id != self.ref_id:
                events.append(Event("source", off, {"from": self.ref_id, "to": t.ref_id, "name": t.ref_name}))
            self.ref_time, self.ref_id = t.ref_time, t.ref_id
        if t is not None and t.leap != self.leap and t.leap in ("Insert second", "Delete second"):
            events.append(Event("leap", 0.0, {"leap": t.leap}))
        if t is not None:
            self.leap = t.leap
        if quality != self.quality:
            offset = offset_of(t) if t else math.nan
            name = {SYNCHRONISED: "sync", DEGRADED: "degraded", UNSYNCHRONISED: "unsync"}[quality]
            if not (self.quality is None and quality == UNSYNCHRONISED and t is None):
                events.append(Event(name, offset, {"reasons": reasons, "quality": QUALITY_NAMES[quality]}))
            self.quality = quality
        return quality, events


def may_set(priority: Sequence[str], source: str, synced_by: str | None) -> tuple[bool, str]:
    """Whether a time set from ``source`` is accepted while ``synced_by`` (or nothing) keeps the clock right."""
    if source not in priority:
        return False, f"time source {source!r} is not in [time] priority {list(priority)}"
    if synced_by is not None and synced_by in priority and priority.index(synced_by) < priority.index(source):
        return False, (f"the clock is synchronised by {synced_by}, which [time] priority {list(priority)} puts "
                       f"before {source}")
    return True, "accepted"
