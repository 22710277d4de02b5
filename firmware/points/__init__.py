"""The point map: every published quantity, once, with its unit, kind and protocol mappings.

Points live in ``firmware/points/*.toml`` as ``[[point]]`` tables, one file per area. Each has
``name`` (snake_case, the key in the measurement snapshot and in replay output), ``unit`` (SI:
V, A, W, var, VA, Hz, Wh, varh, VAh, %, ...), ``kind``, ``description``, optional ``size`` (array
length, e.g. 64 for harmonics indexed by order), and optional mapping tables ``modbus``,
``bacnet``, ``dnp3`` (index), ``obis`` (DLMS/COSEM code), ``snmp`` (OID) whose keys belong to the
service that reads them. A protocol whose points are laid out as one list (DNP3 indexes, OBIS codes, SNMP OIDs)
may keep that list in ``firmware/points/maps/PROTOCOL.toml`` instead: ``[[point]]`` tables holding only ``name``
and the protocol's table, merged into the point of that name (a point mapped both inline and there is an error).
Register tables, the snapshot layout and the docs are generated from these files.
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
MAPS_DIR = POINTS_DIR / "maps"
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


def _parse_map(path: Path) -> dict[str, dict[str, Any]]:
    """One protocol's map file: point name -> that protocol's table."""
    protocol = path.stem
    if protocol not in PROTOCOLS:
        raise ConfigError(f"point map {path}: the file name must be a protocol ({', '.join(PROTOCOLS)})")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"point map {path}: not valid TOML: {exc}") from None
    unknown = set(document) - {"point"}
    if unknown:
        raise ConfigError(f"point map {path}: unknown top-level keys {sorted(unknown)}; only [[point]] tables")
    out: dict[str, dict[str, Any]] = {}
    for i, raw in enumerate(document.get("point", [])):
        where = f"point map {path.name} entry {i} ({raw.get('name', '?')})"
        if set(raw) != {"name", protocol} or not isinstance(raw[protocol], dict):
            raise ConfigError(f"{where}: holds exactly 'name' and a '{protocol}' table")
        if raw["name"] in out:
            raise ConfigError(f"{where}: {raw['name']!r} is mapped twice")
        out[raw["name"]] = dict(raw[protocol])
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
    by_name = {p.name: p for p in points}
    for path in sorted(MAPS_DIR.glob("*.toml")):
        protocol = path.stem
        for name, table in _parse_map(path).items():
            target = by_name.get(name)
            if target is None:
                raise ConfigError(f"point map {path.name}: no point {name!r} in the point map")
            if protocol in target.mappings:
                raise ConfigError(f"point map: {name!r} has a {protocol} mapping both in {target.source} and "
                                  f"in maps/{path.name}")
            target.mappings[protocol] = table
    return tuple(points)


def points_by_name() -> dict[str, Point]:
    return {p.name: p for p in load_points()}


def snapshot_layout(kinds: tuple[str, ...] | None = None) -> list[tuple[str, int]]:
    """(name, size) of every numeric point, the layout of the measurement snapshot."""
    return [(p.name, p.size) for p in load_points() if kinds is None or p.kind in kinds]
