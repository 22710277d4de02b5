"""The Modbus user map (ION7400 "Modbus user map"): quantities of the catalogue laid out at addresses the user
chooses, so a client reads the values it needs in one request.

``[modbus] user_map`` lists entries ``"ADDRESS=POINT"``, ``"ADDRESS=POINT:FORMAT"`` or ``"ADDRESS=POINT[i]..."``
(one element of an array point). Each entry is one register value of its format (float32 by default) at the
protocol address given, in the point's own unit; the fixed map stays as it is. An entry naming something the
catalogue does not have, a command, an unknown format, or registers that overlap the fixed map or another
entry is refused with the entry and what to do (``regmap.check_user_map`` at start and when the configuration
is saved).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from firmware.catalogue import NOT_MEASURED
from firmware.comms.modbus.codecs import FORMATS, get_format
from firmware.points import points_by_name
from hal.errors import ConfigError

ENTRY = re.compile(r"(\d{1,5})=([a-z][a-z0-9_]*)(?:\[(\d{1,4})\])?(?::([a-z0-9]+))?")
ENTRY_TEXT = "ADDRESS=POINT[:FORMAT], e.g. 40000=v_an or 40010=harmonics_v_an[5]:float32"
USER_FORMATS = tuple(f for f in FORMATS if f != "string")


@dataclass(frozen=True)
class UserPoint:
    """What the register map needs of a point (``regmap.PointLike``), with this entry's mapping."""

    name: str
    unit: str
    kind: str
    description: str
    size: int
    modbus: dict[str, Any]

    def mapping(self, protocol: str) -> dict[str, Any] | None:
        return self.modbus if protocol == "modbus" else None


def parse(entries: Iterable[str]) -> list[UserPoint]:
    """The user map's points, each at its address; ``ConfigError`` naming the first wrong entry."""
    points = points_by_name()
    out = []
    for text in entries:
        where = f"config: [modbus] user_map entry {text!r}"
        m = ENTRY.fullmatch(text)
        if m is None:
            raise ConfigError(f"{where}: not {ENTRY_TEXT}")
        address, name, index, fmt = int(m.group(1)), m.group(2), m.group(3), m.group(4) or "float32"
        point = points.get(name)
        if point is None or point.kind in NOT_MEASURED:
            raise ConfigError(f"{where}: {name!r} is not a quantity of the catalogue (docs/catalogue.md lists "
                              f"them)")
        if fmt not in USER_FORMATS:
            raise ConfigError(f"{where}: format {fmt!r} is not one of {', '.join(USER_FORMATS)}")
        if point.size > 1 and index is None:
            raise ConfigError(f"{where}: {name} is an array of {point.size}; name one element, {name}[i]")
        if point.size == 1 and index is not None:
            raise ConfigError(f"{where}: {name} is not an array; give it without [i]")
        element = int(index or 0)
        if element >= point.size:
            raise ConfigError(f"{where}: {name} has elements 0..{point.size - 1}")
        words = get_format(fmt).words
        if address + words - 1 > 0xFFFF:
            raise ConfigError(f"{where}: registers {address}..{address + words - 1} run past 65535")
        mapping = {"address": address, "format": fmt}
        if point.size > 1:
            mapping.update(first=element, count=1)
        out.append(UserPoint(point.name, point.unit, point.kind, point.description, point.size, mapping))
    return out

