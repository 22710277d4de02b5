"""The point map: every published quantity, once, with its unit, kind and protocol mappings.

Points live in ``firmware/points/*.toml`` as ``[[point]]`` tables, one file per area. Each has
``name`` (snake_case, the key in the measurement snapshot and in replay output), ``unit`` (SI:
V, A, W, var, VA, Hz, Wh, varh, VAh, %, ...), ``kind``, ``description``, optional ``size`` (array
length, e.g. 64 for harmonics indexed by order), and optional mapping tables ``modbus``,
``bacnet``, ``dnp3`` (index), ``obis`` (DLMS/COSEM code), ``snmp`` (OID) whose keys belong to the
service that reads them; the protocols without a service yet have their slot for when they come. Register tables,
the snapshot layout and the docs are generated from these files.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from hal.errors import ConfigError

POINTS_DIR = Path(__file__).parent
KINDS = ("instantaneous", "total", "demand", "peak", "status", "identity", "command", "setting", "statistic")
_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
PROTOCOLS = ("modbus", "bacnet", "dnp3", "obis", "snmp")
_KNOWN_KEYS = {"name", "unit", "kind", "description", "size", "interval", *PROTOCOLS}


@dataclass(frozen=True)
class Point:
    name: str
    unit: str
    kind: str
    description: str
    size: int = 1
    interval: str = ""
    source: str = ""
    mappings: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, hash=False)

    def mapping(self, protocol: str) -> dict[str, Any] | None:
        return self.mappings.get(protocol)


def _parse(path: Path) -> list[Point]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"point map {path}: not valid TOML: {exc}") from None
    unknown = set(document) - {"point"}
    if unknown:
        raise ConfigError(f"point map {path}: unknown top-level keys {sorted(unknown)}; only [[point]] tables")
    out = []
    for i, raw in enumerate(document.get("point", [])):
        where = f"point map {path.name} entry {i} ({raw.get('name', '?')})"
        extra = set(raw) - _KNOWN_KEYS
        if extra:
            raise ConfigError(f"{where}: unknown keys {sorted(extra)}; allowed {sorted(_KNOWN_KEYS)}")
        for key in ("name", "unit", "kind", "description"):
            if not isinstance(raw.get(key), str):
                raise ConfigError(f"{where}: '{key}' is missing or not text")
        if not _NAME_RE.fullmatch(raw["name"]):
            raise ConfigError(f"{where}: name must be snake_case ([a-z][a-z0-9_]*)")
        if raw["kind"] not in KINDS:
            raise ConfigError(f"{where}: kind {raw['kind']!r} is not one of {', '.join(KINDS)}")
        size = raw.get("size", 1)
        if not isinstance(size, int) or not 1 <= size <= 4096:
            raise ConfigError(f"{where}: size must be an integer 1..4096")
        mappings = {k: dict(raw[k]) for k in PROTOCOLS if k in raw}
        out.append(Point(raw["name"], raw["unit"], raw["kind"], raw["description"], size,
                         raw.get("interval", ""), path.name, mappings))
    return out


@lru_cache(maxsize=1)
def load_points() -> tuple[Point, ...]:
    """All points from every file, ``basic.toml`` first then by file name; names are unique."""
    files = sorted(POINTS_DIR.glob("*.toml"), key=lambda p: (p.name != "basic.toml", p.name))
    points: list[Point] = []
    seen: dict[str, str] = {}
    for path in files:
        for point in _parse(path):
            if point.name in seen:
                raise ConfigError(f"point map: {point.name!r} is defined in both {seen[point.name]} and {path.name}")
            seen[point.name] = path.name
            points.append(point)
    return tuple(points)


def points_by_name() -> dict[str, Point]:
    return {p.name: p for p in load_points()}


def snapshot_layout(kinds: tuple[str, ...] | None = None) -> list[tuple[str, int]]:
    """(name, size) of every numeric point, the layout of the measurement snapshot."""
    return [(p.name, p.size) for p in load_points() if kinds is None or p.kind in kinds]
