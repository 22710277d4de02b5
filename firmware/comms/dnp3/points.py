"""The DNP3 point list, projected from the catalogue: every point of the point map with a ``dnp3`` table
(``firmware/points/maps/dnp3.toml``) becomes one or more DNP3 points.

Keys of a point's ``dnp3`` table:

- ``group``: 1 (binary input), 10 (binary output status), 20 (counter), 21 (frozen counter) or 30 (analog input);
- ``index``: the first point index; an array point takes ``count`` consecutive indexes (default its size), and a
  bit-field point given ``bits`` takes one binary input per bit (bit 0 at ``index``);
- ``variation``: the static variation a class 0 poll or a variation-0 read returns;
- ``event_variation``: the variation of its events (groups 2, 22, 23, 32);
- ``class``: 1, 2 or 3 for events of that class, 0 for none;
- ``deadband``: for analog inputs and counters, the change (in the point's unit) that makes an event;
- ``scale``: factor applied to counters and to the integer variations of analog inputs (a counter of kWh from a
  point in Wh: 0.001; a power factor in thousandths: 1000); floating-point variations carry the value unscaled.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

from firmware.catalogue import quantities
from firmware.comms.dnp3.objects import EVENT_GROUP, EVENT_VARIATIONS, STATIC_VARIATIONS
from hal.errors import ConfigError

KEYS = {"group", "index", "variation", "event_variation", "class", "deadband", "scale", "count", "bits"}
GROUP_NAMES = {1: "binary input", 10: "binary output status", 20: "counter", 21: "frozen counter",
               30: "analog input"}
DEFAULT_VARIATION = {1: 2, 10: 2, 20: 5, 21: 9, 30: 5}
DEFAULT_EVENT_VARIATION = {1: 2, 20: 5, 21: 5, 30: 7}
MAX_INDEX = 65535


@dataclass(frozen=True)
class DnpPoint:
    name: str                 # catalogue point
    element: int | None       # array element
    bit: int | None           # bit of a bit-field point
    group: int
    index: int
    variation: int
    event_variation: int
    klass: int
    deadband: float
    scale: float
    unit: str
    description: str

    @property
    def label(self) -> str:
        if self.bit is not None:
            return f"{self.name} bit {self.bit}"
        return self.name if self.element is None else f"{self.name}[{self.element}]"

    def read(self, values: Mapping[str, Any]) -> Any:
        """This point's value in ``values``: bool for binaries, int for counters, float for analogs; None when
        not available."""
        raw = values.get(self.name)
        if raw is None:
            return None
        try:
            v = float(raw[self.element] if self.element is not None else raw)
        except (TypeError, ValueError, IndexError):
            return None
        if not math.isfinite(v):
            return None
        if self.group in (1, 10):
            return bool((int(v) >> self.bit) & 1) if self.bit is not None else v != 0
        if self.group in (20, 21):
            return int(v * self.scale) if v >= 0 else None
        return v


def _int(where: str, table: dict[str, Any], key: str, default: Any, lo: int, hi: int) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{where}: dnp3 {key} must be a whole number {lo}..{hi}")
    return value


def _number(where: str, table: dict[str, Any], key: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: dnp3 {key} must be a number >= 0")
    return float(value)


def _slots(where: str, table: dict[str, Any], group: int, size: int) -> list[tuple[int | None, int | None]]:
    """(array element, bit) of each DNP3 point one catalogue point gives."""
    if table.get("bits") is not None:
        bits = _int(where, table, "bits", None, 1, 32)
        if group != 1:
            raise ConfigError(f"{where}: dnp3 bits only for group 1")
        return [(None, b) for b in range(bits)]
    if size > 1:
        return [(e, None) for e in range(_int(where, table, "count", size, 1, size))]
    return [(None, None)]


@lru_cache(maxsize=1)
def load() -> tuple[DnpPoint, ...]:
    """Every DNP3 point, by group then index; a clash or a wrong key is a ``ConfigError`` naming the point."""
    out: list[DnpPoint] = []
    taken: dict[tuple[int, int], str] = {}
    for p in quantities():
        table = p.mapping("dnp3")
        if table is None:
            continue
        where = f"point map: {p.name}"
        extra = set(table) - KEYS
        if extra:
            raise ConfigError(f"{where}: unknown dnp3 keys {sorted(extra)}; allowed {sorted(KEYS)}")
        group = table.get("group")
        if group not in GROUP_NAMES:
            raise ConfigError(f"{where}: dnp3 group must be one of {sorted(GROUP_NAMES)}")
        first = _int(where, table, "index", None, 0, MAX_INDEX)
        variation = _int(where, table, "variation", DEFAULT_VARIATION[group], 1, 10)
        if variation not in STATIC_VARIATIONS[group]:
            raise ConfigError(f"{where}: g{group}v{variation} is not served; {STATIC_VARIATIONS[group]}")
        klass = _int(where, table, "class", 0, 0, 3)
        event_variation = _int(where, table, "event_variation", DEFAULT_EVENT_VARIATION.get(group, 1), 1, 8)
        if klass and (group not in EVENT_GROUP or event_variation not in EVENT_VARIATIONS[EVENT_GROUP[group]]):
            raise ConfigError(f"{where}: g{group} events of variation {event_variation} are not served")
        deadband = _number(where, table, "deadband", 0.0)
        scale = _number(where, table, "scale", 1.0)
        for k, (element, bit) in enumerate(_slots(where, table, group, p.size)):
            index = first + k
            if index > MAX_INDEX:
                raise ConfigError(f"{where}: dnp3 index past {MAX_INDEX}")
            if (group, index) in taken:
                raise ConfigError(f"{where}: g{group} index {index} is also {taken[(group, index)]}")
            taken[(group, index)] = p.name
            out.append(DnpPoint(p.name, element, bit, group, index, variation, event_variation, klass, deadband,
                                scale, p.unit, p.description))
    out.sort(key=lambda d: (d.group, d.index))
    return tuple(out)


def by_group() -> dict[int, list[DnpPoint]]:
    groups: dict[int, list[DnpPoint]] = {g: [] for g in GROUP_NAMES}
    for d in load():
        groups[d.group].append(d)
    return groups
