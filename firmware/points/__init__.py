"""The point map: every published quantity, once, with its unit, kind and protocol mappings.

Points live in ``firmware/points/*.toml`` as ``[[point]]`` tables, one file per area. Each has
``name`` (snake_case, the key in the measurement snapshot and in replay output), ``unit`` (SI:
V, A, W, var, VA, Hz, Wh, varh, VAh, %, ...), ``kind``, ``description``, ``label`` (what a person reads
beside the value: the web pages' row titles), ``area`` (the section of the pages it is shown in, one of
``AREAS``), optional ``type`` (how its number reads, one of ``TYPES``: a measured number, an on/off flag, a
count, a code such as a quadrant or a rate, a time in seconds since 1970), optional ``size`` (array
length, e.g. 64 for harmonics indexed by order), and optional mapping tables ``modbus``,
``bacnet``, ``dnp3`` (index), ``obis`` (DLMS/COSEM code), ``snmp`` (OID) whose keys belong to the
service that reads them. A protocol whose points are laid out as one list (DNP3 indexes, OBIS codes, SNMP OIDs)
may keep that list in ``firmware/points/maps/PROTOCOL.toml`` instead: ``[[point]]`` tables holding only ``name``
and the protocol's table, merged into the point of that name (a point mapped both inline and there is an error).
Register tables, the snapshot layout and the docs are generated from these files.

A label names phases as ``{a}``, ``{b}``, ``{c}``: A, B, C with IEEE labels, L1, L2, L3 with IEC ones
(``[display] labels``, as the ION7400's "Phase Lbls"); a label that differs otherwise is a table
``{ ieee = "...", iec = "..." }``.
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
_KNOWN_KEYS = {"name", "unit", "kind", "description", "label", "area", "type", "size", "interval", *PROTOCOLS}
# How a value reads: a measured number (auto-scaled by its unit), 0/1 as off/on, a whole count, a code (quadrant,
# rate, priority, bits) as an integer, a time (seconds since 1970, UTC) as the meter's local time.
TYPES = ("number", "flag", "count", "code", "time")
LABEL_CONVENTIONS = ("ieee", "iec")
PHASE_NAMES = {"ieee": {"a": "A", "b": "B", "c": "C"}, "iec": {"a": "L1", "b": "L2", "c": "L3"}}
_LABEL_RE = re.compile(r"[^{}]*(\{[abc]\}[^{}]*)*")


@dataclass(frozen=True)
class Area:
    """A section of the pages: ``main`` ones are shown open, the others folded; ``page`` is the page it is on,
    the live readings or the energy registers (none: shown elsewhere)."""
    name: str
    title: str
    page: str = "readings"
    main: bool = False


_E = "energy"
# In the order the pages show them.
AREAS = (
    Area("voltage", "Voltage", main=True), Area("current", "Current", main=True), Area("power", "Power", main=True),
    Area("power_factor", "Power factor", main=True), Area("frequency", "Frequency", main=True),
    Area("harmonics", "Harmonics and distortion"), Area("angles", "Phase angles"),
    Area("unbalance", "Unbalance and sequence components"), Area("flicker", "Flicker"),
    Area("pq_events", "Dips, swells and interruptions"), Area("pq_3s", "PQ aggregates, 3 s"),
    Area("pq_10min", "PQ aggregates, 10 min"), Area("pq_2h", "PQ aggregates, 2 h"),
    Area("status", "Meter status", main=True), Area("alarms_io", "Alarms and I/O"),
    Area("energy_paths", "Energy paths (samples vs the ADE9000's accumulators)"),
    Area("energy_active", "Active energy", _E, True), Area("energy_reactive", "Reactive energy", _E, True),
    Area("energy_apparent", "Apparent energy", _E, True), Area("energy_other", "Other energy", _E),
    Area("demand", "Demand", _E), Area("demand_peak", "Peak demand", _E),
    Area("billing", "Billing registers", _E), Area("test_mode", "Test mode", _E),
    Area("identity", "Identity", ""), Area("commands", "Commands", ""),
)
AREA_NAMES = tuple(a.name for a in AREAS)


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
    label_ieee: str = ""        # the label as written, phases as {a} {b} {c}
    label_iec: str = ""
    area: str = ""
    type: str = "number"

    def mapping(self, protocol: str) -> dict[str, Any] | None:
        return self.mappings.get(protocol)

    def label(self, convention: str = "ieee") -> str:
        """The label with IEEE (A, B, C) or IEC (L1, L2, L3) phase names."""
        template = self.label_iec if convention == "iec" else self.label_ieee
        for token, phase in PHASE_NAMES[convention].items():
            template = template.replace("{" + token + "}", phase)
        return template


def _labels(raw: Any, where: str) -> tuple[str, str]:
    if isinstance(raw, str):
        raw = {"ieee": raw, "iec": raw}
    if not isinstance(raw, dict) or set(raw) != set(LABEL_CONVENTIONS):
        raise ConfigError(f"{where}: 'label' is missing, or neither text nor a table of ieee and iec texts")
    for text in raw.values():
        if not isinstance(text, str) or not text.strip() or len(text) > 80 or not _LABEL_RE.fullmatch(text):
            raise ConfigError(f"{where}: label {text!r} must be 1-80 characters, phases written {{a}} {{b}} {{c}}")
    return raw["ieee"], raw["iec"]


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
        if raw.get("area") not in AREA_NAMES:
            raise ConfigError(f"{where}: area {raw.get('area')!r} is not one of {', '.join(AREA_NAMES)}")
        vtype = raw.get("type", "number")
        if vtype not in TYPES:
            raise ConfigError(f"{where}: type {vtype!r} is not one of {', '.join(TYPES)}")
        label_ieee, label_iec = _labels(raw.get("label"), where)
        mappings = {k: dict(raw[k]) for k in PROTOCOLS if k in raw}
        out.append(Point(raw["name"], raw["unit"], raw["kind"], raw["description"], size,
                         raw.get("interval", ""), path.name, mappings, label_ieee, label_iec, raw["area"], vtype))
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
