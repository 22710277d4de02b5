"""Answering a READ (IEEE 1815-2012 clause 4.4.1): static data of the point list by class 0, by group with its
variation, by range, count or index, and events by class or group, packed into a response's fragments."""
from __future__ import annotations

import time

from firmware.comms.dnp3 import objects as o
from firmware.comms.dnp3.database import Database, Event, EventBuffer
from firmware.comms.dnp3.points import DnpPoint
from firmware.comms.dnp3.response import ResponseWriter


def scaled(value: float | None, variation: int, scale: float) -> float | None:
    """An analog value as a variation carries it: integer variations (1-4) times the point's scale."""
    return value * scale if value is not None and variation < 5 else value



def read(db: Database, events: EventBuffer, headers: list[o.Header], w: ResponseWriter) -> int:
    """Answer a READ: class 0 (static data), classes 1-3 and event groups (events, left in ``events`` until
    confirmed), static groups by range, count or index, and the time."""
    iin = 0
    for h in headers:
        if h.group == 60 and 1 <= h.variation <= 4:
            if h.variation == 1:
                if not h.all:
                    raise o.ParseError("class 0 is read with qualifier 06")
                for group in (1, 10, 20, 21, 30):
                    _static(db, w, group, 0, db.groups[group], False)
            else:
                write_events(w, events.select((h.variation - 1,), None, _limit(h)))
        elif h.group in o.STATIC_VARIATIONS:
            if h.variation and h.variation not in o.STATIC_VARIATIONS[h.group] and (h.group, h.variation) != \
                    (10, 1) and (h.group, h.variation) != (1, 1):
                iin |= o.IIN_OBJECT_UNKNOWN
                continue
            chosen = _pick(db.groups[h.group], h)
            if chosen is None:
                iin |= o.IIN_PARAMETER_ERROR
                continue
            _static(db, w, h.group, h.variation, chosen, h.qualifier in (o.Q_INDEX_8, o.Q_INDEX_16),
                         h.qualifier == o.Q_INDEX_8)
        elif h.group in o.EVENT_VARIATIONS:
            if h.variation and h.variation not in o.EVENT_VARIATIONS[h.group]:
                iin |= o.IIN_OBJECT_UNKNOWN
                continue
            chosen_events = events.select((1, 2, 3), (h.group,), _limit(h))
            write_events(w, chosen_events, h.variation)
        elif (h.group, h.variation) in ((50, 1), (50, 0)):
            w.raw(bytes((50, 1, o.Q_COUNT_8, 1)) + o.time48(int(time.time() * 1000)))
        else:
            iin |= o.IIN_OBJECT_UNKNOWN
    return iin


def _limit(h: o.Header) -> int | None:
    if h.all:
        return None
    if h.qualifier in (o.Q_COUNT_8, o.Q_COUNT_16):
        return h.count
    raise o.ParseError("events are read with qualifier 06, 07 or 08")


def _pick(points: list[DnpPoint], h: o.Header) -> list[DnpPoint] | None:
    if h.all:
        return points
    if h.start is not None and h.stop is not None:
        chosen = [d for d in points if h.start <= d.index <= h.stop]
        return chosen if len(chosen) == h.stop - h.start + 1 else None
    if h.qualifier in (o.Q_COUNT_8, o.Q_COUNT_16):
        return points[:h.count]
    by_index = {d.index: d for d in points}
    if any(i not in by_index for i, _ in h.objects):
        return None
    return [by_index[i] for i, _ in h.objects]


def _static(db: Database, w: ResponseWriter, group: int, variation: int, points: list[DnpPoint], indexed: bool,
            narrow: bool = False) -> None:
    runs: list[tuple[int, list[DnpPoint]]] = []
    for d in points:
        var = variation or d.variation
        if indexed and var == 1 and group in (1, 10):
            var = 2                                          # packed bits carry no index: with flags instead
        if runs and runs[-1][0] == var and runs[-1][1][-1].index + 1 == d.index and not indexed:
            runs[-1][1].append(d)
        else:
            runs.append((var, [d]))
    if indexed:
        # answered with the qualifier of the request, in its order, one header per variation
        merged: dict[int, list[DnpPoint]] = {}
        for var, run in runs:
            merged.setdefault(var, []).extend(run)
        for var, run in merged.items():
            w.indexed(group, var, [(d.index, _encode(db, group, var, d)) for d in run], narrow=narrow)
        return
    whole = points is db.groups[group]
    encoded = db.encoded.get((group, variation)) if whole else None
    if encoded is None:
        encoded = [(var, run[0].index, [bool(db.values[(group, d.index)]) for d in run] if var == 1 and group in
                    (1, 10) else [_encode(db, group, var, d) for d in run]) for var, run in runs]
        if whole:
            db.encoded[(group, variation)] = encoded        # every point of a group: kept until the next update
    for var, start, items in encoded:
        if var == 1 and group in (1, 10):
            w.bits(group, 1, start, items)  # type: ignore[arg-type]
        else:
            w.ranged(group, var, start, items)  # type: ignore[arg-type]


def _encode(db: Database, group: int, var: int, d: DnpPoint) -> bytes:
    value = db.values[(group, d.index)]
    flags = db.flags(d)
    if group in (1, 10):
        return bytes((flags,))
    if group in (20, 21):
        return o.counter(group, var, value or 0, flags, int((db.freeze_time or 0) * 1000))
    return o.analog_static(var, scaled(value, var, d.scale), flags)


def write_events(w: ResponseWriter, events: list[Event], variation: int = 0) -> None:
    runs: list[tuple[int, int, list[Event]]] = []
    for e in events:
        var = variation or e.variation
        if runs and runs[-1][0] == e.group and runs[-1][1] == var:
            runs[-1][2].append(e)
        else:
            runs.append((e.group, var, [e]))
    for group, var, run in runs:
        items = []
        for e in run:
            if group == 2:
                item = bytes((e.flags,)) + (o.time48(e.ms) if var == 2 else b"")
            elif group in (22, 23):
                item = o.counter(group, var, e.value or 0, e.flags, e.ms)
            else:
                item = o.analog_event(var, scaled(e.value, var if var < 5 else 5, e.scale), e.flags, e.ms)
            items.append((e.index, item))
        w.indexed(group, var, items, [e.id for e in run])
