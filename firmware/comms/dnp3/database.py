"""The outstation's values and events: the present value of every DNP3 point, refreshed from the measurement
snapshot, the events a change makes (per point deadband, per point class), and each session's bounded event
buffers.

Events are detected once, against the value last reported in an event, and handed to every session; each session
keeps its own buffer per class (``EventBuffer``), drops the oldest event of a full class and then reports the
overflow (IIN2.3) until a confirmed read makes room.
"""
from __future__ import annotations

import collections
import itertools
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from firmware.comms.dnp3.objects import EVENT_GROUP, ONLINE, binary_flags
from firmware.comms.dnp3.points import DnpPoint, by_group

# The catalogue's time of the last register freeze: a new one makes a frozen counter event of every frozen
# counter with a class (JEMStar II: "An event is generated at each register freeze").
FREEZE_TIME_POINT = "freeze_time"


@dataclass
class Event:
    id: int
    group: int                # event group: 2, 22, 23, 32
    index: int
    variation: int
    klass: int
    value: Any
    flags: int
    ms: int
    scale: float = 1.0


class Database:
    def __init__(self) -> None:
        self.groups = by_group()
        self.points = [d for g in self.groups.values() for d in g]
        self.values: dict[tuple[int, int], Any] = {(d.group, d.index): None for d in self.points}
        self.reported: dict[tuple[int, int], Any] = {}
        self.freeze_time: float | None = None
        self.listeners: list[Callable[[list[Event]], None]] = []
        self._ids = itertools.count(1)
        # static objects of a whole group as a read encodes them, by (group, variation): valid until the next update
        self.encoded: dict[tuple[int, int], Any] = {}

    def flags(self, d: DnpPoint) -> int:
        value = self.values[(d.group, d.index)]
        if d.group in (1, 10):
            return binary_flags(value)
        return ONLINE if value is not None else 0

    def update(self, values: Mapping[str, Any], now_ms: int | None = None) -> list[Event]:
        """Take new snapshot values; the events they make (also handed to every listener)."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        self.encoded.clear()
        events: list[Event] = []
        for d in self.points:
            key = (d.group, d.index)
            new = d.read(values)
            self.values[key] = new
            if not d.klass or d.group == 21:
                continue
            if key not in self.reported:
                self.reported[key] = new
                continue
            last = self.reported[key]
            if not self._changed(d, last, new):
                continue
            self.reported[key] = new
            flags = binary_flags(new) if d.group == 1 else (ONLINE if new is not None else 0)
            events.append(Event(next(self._ids), EVENT_GROUP[d.group], d.index, d.event_variation, d.klass, new,
                                flags, now_ms, d.scale))
        events += self._freeze(values)
        if events:
            for listener in self.listeners:
                listener(events)
        return events

    @staticmethod
    def _changed(d: DnpPoint, last: Any, new: Any) -> bool:
        if (last is None) != (new is None):
            return True
        if new is None:
            return False
        if d.group == 1:
            return bool(last != new)
        return bool(abs(new - last) > d.deadband) if d.deadband else bool(new != last)

    def _freeze(self, values: Mapping[str, Any]) -> list[Event]:
        raw = values.get(FREEZE_TIME_POINT)
        try:
            at = float(raw) if raw is not None else None
        except (TypeError, ValueError):
            at = None
        if at is None or at != at:
            return []
        previous, self.freeze_time = self.freeze_time, at
        if previous is None or previous == at:
            return []
        out = []
        for d in self.groups[21]:
            value = self.values[(21, d.index)]
            if d.klass and value is not None:
                out.append(Event(next(self._ids), 23, d.index, d.event_variation, d.klass, value, ONLINE,
                                 int(at * 1000)))
        return out


class EventBuffer:
    """One session's events, per class, each class at most ``capacity`` (the oldest dropped on overflow)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.classes: dict[int, collections.deque[Event]] = {k: collections.deque() for k in (1, 2, 3)}
        self.overflow = False
        self.selected: set[int] = set()

    def add(self, events: Iterable[Event]) -> None:
        for e in events:
            q = self.classes[e.klass]
            if len(q) >= self.capacity:
                dropped = q.popleft()
                self.selected.discard(dropped.id)
                self.overflow = True
            q.append(e)

    def pending(self, klass: int) -> int:
        return len(self.classes[klass])

    def select(self, classes: Iterable[int], groups: Iterable[int] | None, limit: int | None) -> list[Event]:
        """Events not yet selected of ``classes`` (and ``groups`` when given), oldest first, at most ``limit``;
        they stay in the buffer until ``confirm``."""
        wanted = set(groups) if groups is not None else None
        out: list[Event] = []
        for k in sorted(set(classes)):
            for e in self.classes[k]:
                if limit is not None and len(out) >= limit:
                    break
                if e.id in self.selected or (wanted is not None and e.group not in wanted):
                    continue
                out.append(e)
        self.selected.update(e.id for e in out)
        return out

    def confirm(self, ids: Iterable[int]) -> None:
        gone = set(ids)
        for q in self.classes.values():
            if any(e.id in gone for e in q):
                kept = [e for e in q if e.id not in gone]
                q.clear()
                q.extend(kept)
        self.selected -= gone
        if all(len(q) < self.capacity for q in self.classes.values()):
            self.overflow = False

    def release(self) -> None:
        """Selected events not confirmed: reported again by the next read."""
        self.selected.clear()
