"""Every alarm's state, the active and historic lists, acknowledgement and the bell.

Priorities follow the ION7400 bands (``firmware.storage.eventlog.BANDS``): High 192-255, Medium 128-191,
Low 64-127 are alarms; Info Only 1-63 only writes its events and None 0 does nothing ("Alarms with a priority
of Info Only or None are not shown on the meter's display, and do not function as alarms", ION7400 manual).
An alarm stays in the active list while it is active or not yet acknowledged; once it has dropped out it is
also in the historic list with its duration and the extreme value reached. Acknowledging marks the alarm's
present episode; a new pickup needs a new acknowledgement.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from firmware.alarms.setpoint import HALF_CYCLE_POINTS, Setpoint, SetpointState
from firmware.storage.eventlog import band

ALARM_MIN_PRIORITY = 64            # Low: the lowest priority that is an alarm (ION7400 manual)
HISTORIC_DEPTH = 100


@dataclass(frozen=True)
class Actions:
    output: int = 0                 # digital output held on while the alarm is active (0 = none)
    capture: bool = False           # ask the recorder for a waveform capture at pickup
    event: bool = True              # write pickup and dropout to the event log (priority above the cutoff)


@dataclass(frozen=True)
class InputAlarm:
    """A digital-input alarm: active while the input is on (or off, ``on_active=False``)."""
    name: str
    number: int
    on_active: bool = True
    priority: int = 32              # ION default "Digital In": Info Only


@dataclass(frozen=True)
class UnaryAlarm:
    """An alarm of something that happens rather than a state (ION7400 unary alarms): the meter's power-up, a
    dip, swell or interruption that ended. It is active from when it happens until it is acknowledged, so its
    output action holds until someone has seen it."""
    name: str
    source: str                     # "power_up", "pq_sag" ...
    priority: int


@dataclass
class AlarmState:
    id: int
    name: str
    priority: int
    source: str                     # the point or "di<N>"
    actions: Actions
    active: bool = False
    acked: bool = True
    since: float = math.nan
    ended: float = math.nan
    acked_at: float = math.nan
    acked_by: str = ""
    value: float = math.nan
    setpoint: SetpointState | None = field(default=None, repr=False)
    unary: bool = False

    @property
    def is_alarm(self) -> bool:
        return self.priority >= ALARM_MIN_PRIORITY

    def row(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "priority": self.priority, "band": band(self.priority),
                "source": self.source, "active": self.active, "acknowledged": self.acked, "since": self.since,
                "ended": None if math.isnan(self.ended) else self.ended,
                "acknowledged_at": None if math.isnan(self.acked_at) else self.acked_at,
                "acknowledged_by": self.acked_by or None,
                "value": None if math.isnan(self.value) else self.value}


@dataclass(frozen=True)
class AlarmEvent:
    alarm: AlarmState
    what: str                       # "pickup", "dropout", "ack"
    t: float
    value: float = math.nan
    user: str = ""


class AlarmManager:
    def __init__(self, setpoints: Iterable[tuple[Setpoint, Actions]] = (),
                 input_alarms: Iterable[tuple[InputAlarm, Actions]] = (), historic_depth: int = HISTORIC_DEPTH,
                 unary: Iterable[tuple[UnaryAlarm, Actions]] = ()) -> None:
        self.alarms: list[AlarmState] = []
        for sp, actions in setpoints:
            self.alarms.append(AlarmState(len(self.alarms) + 1, sp.name, sp.priority, sp.point, actions,
                                          setpoint=SetpointState(sp)))
        self._inputs: dict[int, list[tuple[InputAlarm, AlarmState]]] = {}
        for ia, actions in input_alarms:
            state = AlarmState(len(self.alarms) + 1, ia.name, ia.priority, f"di{ia.number}", actions)
            self.alarms.append(state)
            self._inputs.setdefault(ia.number, []).append((ia, state))
        self._unary: dict[str, AlarmState] = {}
        for ua, actions in unary:
            state = AlarmState(len(self.alarms) + 1, ua.name, ua.priority, ua.source, actions, unary=True)
            self.alarms.append(state)
            self._unary[ua.source] = state
        self.historic: deque[dict[str, Any]] = deque(maxlen=historic_depth)

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, values: Mapping[str, Any], t: float) -> list[AlarmEvent]:
        """One evaluation period of every setpoint alarm against the published ``values``."""
        out: list[AlarmEvent] = []
        for alarm in self.alarms:
            sp = alarm.setpoint
            if sp is None or alarm.priority == 0 or sp.spec.high_speed:
                continue
            raw = values.get(sp.spec.point, math.nan)
            value = float(np.asarray(raw).reshape(-1)[sp.spec.index]) if np.ndim(raw) else float(raw)
            what = sp.update(value, t)
            if alarm.active:
                alarm.value = sp.extreme
            if what is not None:
                out.append(self._change(alarm, what == "pickup", t, sp.extreme if what == "pickup" else value))
        return out

    @property
    def high_speed(self) -> bool:
        return any(a.setpoint is not None and a.setpoint.spec.high_speed for a in self.alarms)

    def evaluate_half_cycles(self, t: np.ndarray, urms: np.ndarray) -> list[AlarmEvent]:
        """The high-speed setpoints against a batch of half-cycle r.m.s. values: ``urms`` (n, signals) as
        metrology sends them, ``t`` (n,) each value's time (epoch s, the end of its half-cycle window)."""
        out: list[AlarmEvent] = []
        for alarm in self.alarms:
            sp = alarm.setpoint
            if sp is None or alarm.priority == 0 or not sp.spec.high_speed:
                continue
            column = urms[:, HALF_CYCLE_POINTS[sp.spec.point]]
            for tk, value in zip(t.tolist(), column.tolist()):
                what = sp.update(value, tk)
                if alarm.active:
                    alarm.value = sp.extreme
                if what is not None:
                    out.append(self._change(alarm, what == "pickup", tk, sp.extreme if what == "pickup" else value))
        return out

    def input_changed(self, number: int, active: bool, t: float) -> list[AlarmEvent]:
        out = []
        for ia, alarm in self._inputs.get(number, ()):
            on = active == ia.on_active
            if on != alarm.active and alarm.priority > 0:
                out.append(self._change(alarm, on, t, 1.0 if active else 0.0))
        return out

    def happened(self, source: str, t: float, value: float = math.nan) -> list[AlarmEvent]:
        """The unary alarm of ``source`` occurred (again): a pickup that lasts until acknowledged."""
        alarm = self._unary.get(source)
        if alarm is None or alarm.priority == 0:
            return []
        if alarm.active:                        # not yet acknowledged: the same episode, its latest value
            alarm.value = value
            return []
        return [self._change(alarm, True, t, value)]

    def _change(self, alarm: AlarmState, on: bool, t: float, value: float) -> AlarmEvent:
        alarm.active = on
        if on:
            alarm.since, alarm.ended, alarm.value = t, math.nan, value
            alarm.acked, alarm.acked_at, alarm.acked_by = not alarm.is_alarm, math.nan, ""
            return AlarmEvent(alarm, "pickup", t, value)
        alarm.ended = t
        self.historic.append({**alarm.row(), "duration_s": t - alarm.since})
        return AlarmEvent(alarm, "dropout", t, value)

    # ------------------------------------------------------------------ acknowledgement

    def acknowledge(self, ids: Iterable[int] | None, user: str, t: float) -> list[AlarmEvent]:
        """Acknowledge the given alarms (None: every unacknowledged one)."""
        wanted = None if ids is None else {int(i) for i in ids}
        out = []
        for alarm in self.alarms:
            if alarm.acked or (wanted is not None and alarm.id not in wanted):
                continue
            alarm.acked, alarm.acked_at, alarm.acked_by = True, t, user
            for row in self.historic:       # the episode that ended unacknowledged is acknowledged there too
                if row["id"] == alarm.id and row["since"] == alarm.since:
                    row.update(acknowledged=True, acknowledged_at=t, acknowledged_by=user)
            out.append(AlarmEvent(alarm, "ack", t, user=user))
            if alarm.unary and alarm.active:    # seen: a unary alarm ends with its acknowledgement
                out.append(self._change(alarm, False, t, alarm.value))
        return out

    # ------------------------------------------------------------------ lists and summary

    def by_id(self, alarm_id: int) -> AlarmState:
        return self.alarms[alarm_id - 1]

    def active_list(self) -> list[dict[str, Any]]:
        """Alarms (Low and above) active or not yet acknowledged, highest priority first, then newest."""
        rows = [a for a in self.alarms if a.is_alarm and (a.active or not a.acked)]
        rows.sort(key=lambda a: (-a.priority, -(a.since if math.isfinite(a.since) else 0.0)))
        return [a.row() for a in rows]

    def historic_list(self) -> list[dict[str, Any]]:
        return list(reversed(self.historic))

    def summary(self) -> dict[str, float]:
        """Published values: alarm_active, the bell's priority, counts."""
        active = [a for a in self.alarms if a.is_alarm and a.active]
        unacked = [a for a in self.alarms if a.is_alarm and not a.acked]
        bell = max((a.priority for a in active + unacked), default=0)
        return {"alarm_active": 1.0 if active else 0.0, "alarm_active_count": float(len(active)),
                "alarm_unacknowledged_count": float(len(unacked)), "alarm_highest_priority": float(bell)}

    def output_levels(self) -> dict[int, bool]:
        """Digital outputs that alarm actions hold on: on while any of their alarms is active."""
        levels: dict[int, bool] = {}
        for a in self.alarms:
            if a.actions.output:
                levels[a.actions.output] = levels.get(a.actions.output, False) or a.active
        return levels
