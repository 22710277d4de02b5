"""The BACnet object model read from ``objects.toml``: which object publishes which point, with what units.

Only data here: the analog inputs, analog values, binary inputs and trend logs of the Leviton Series 4100
(seed 003), each tied to a point of the meter's point map (``firmware/points``), a setting, or an alert.
``load_model`` checks every reference (a point that does not exist, a duplicate instance, a missing S4100
instance) and says which entry is wrong.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from firmware.points import points_by_name
from hal.errors import ConfigError

OBJECTS_FILE = Path(__file__).with_name("objects.toml")
# Instances the S4100 defines (seed 003, Device Object_List).
AI_COUNT, AV_COUNT, BI_COUNT, TL_COUNT = 83, 11, 15, 3
COMPUTED = ("max_power", "alarm_bitmap", "output_config")
SETTINGS = ("command", "system_type", "ct_primary", "ct_secondary", "pt_ratio", "system_voltage", "display_units",
            "phase_loss_voltage", "phase_loss_imbalance", "subintervals", "subinterval_length")
ALERTS = ("volts_error_a", "volts_error_b", "volts_error_c", "current_error_a", "current_error_b",
          "current_error_c", "frequency_error", "reserved", "phase_loss_a", "phase_loss_b", "phase_loss_c",
          "low_pf_a", "low_pf_b", "low_pf_c", "rtc_reset")


@dataclass(frozen=True)
class AnalogInput:
    instance: int
    name: str
    description: str
    units: str
    point: str = ""
    element: int = -1               # of an array point (di_count: element 0 is input 1); -1 for a single value
    scale: float = 1.0
    phase: str = ""
    valid: tuple[float, float] | None = None
    compute: str = ""
    constant: float | None = None
    reserved: bool = False
    unavailable: str = ""

    @property
    def source(self) -> str:
        """What the value comes from, in words (docs)."""
        if self.point:
            name = f"{self.point}[{self.element}]" if self.element >= 0 else self.point
            return f"`{name}`" + (f" × {self.scale:g}" if self.scale != 1.0 else "")
        if self.compute:
            return f"computed: {self.compute}"
        if self.constant is not None:
            return f"constant {self.constant:g}"
        if self.reserved:
            return "reserved (QNAN)"
        return f"not measured (QNAN, no-sensor): {self.unavailable}"


@dataclass(frozen=True)
class AnalogValue:
    instance: int
    name: str
    description: str
    units: str
    setting: str


@dataclass(frozen=True)
class BinaryInput:
    instance: int
    name: str
    description: str
    alert: str


@dataclass(frozen=True)
class TrendLog:
    instance: int
    name: str
    description: str
    default_input: int


@dataclass(frozen=True)
class Model:
    device: dict[str, Any]
    analog_inputs: tuple[AnalogInput, ...]
    analog_values: tuple[AnalogValue, ...]
    binary_inputs: tuple[BinaryInput, ...]
    trend_logs: tuple[TrendLog, ...]
    cov_increments: dict[str, float] = field(default_factory=dict)      # by analog input units
    by_point: dict[str, list[AnalogInput]] = field(default_factory=dict, compare=False)

    @property
    def loggable(self) -> range:
        first, last = self.device["loggable_inputs"]
        return range(int(first), int(last) + 1)


def _entries(document: dict[str, Any], key: str, count: int, where: str) -> list[dict[str, Any]]:
    entries = document.get(key, [])
    instances = [e.get("instance") for e in entries]
    if sorted(instances) != list(range(1, count + 1)):
        missing = sorted(set(range(1, count + 1)) - set(i for i in instances if isinstance(i, int)))
        raise ConfigError(f"{where}: [[{key}]] must hold instances 1..{count} once each (the S4100's); "
                          f"missing {missing}, found {len(instances)} entries")
    return sorted(entries, key=lambda e: e["instance"])


def _analog_input(raw: dict[str, Any], where: str, points: dict[str, Any]) -> AnalogInput:
    here = f"{where}: analog_input {raw.get('instance')} ({raw.get('name')})"
    allowed = set(AnalogInput.__dataclass_fields__)
    if set(raw) - allowed:
        raise ConfigError(f"{here}: unknown keys {sorted(set(raw) - allowed)}; allowed {sorted(allowed)}")
    kinds = [k for k in ("point", "compute", "constant", "reserved", "unavailable") if raw.get(k) not in (None, "")]
    if len(kinds) != 1:
        raise ConfigError(f"{here}: give exactly one of point, compute, constant, reserved, unavailable "
                          f"(found {kinds or 'none'})")
    if raw.get("point") and raw["point"] not in points:
        raise ConfigError(f"{here}: point {raw['point']!r} is not in the point map (firmware/points/*.toml)")
    size = points[raw["point"]].size if raw.get("point") else 1
    if raw.get("element", -1) >= max(size, 1) or (size > 1 and raw.get("element", -1) < 0):
        raise ConfigError(f"{here}: point {raw['point']!r} has {size} elements: give element 0..{size - 1}")
    if raw.get("compute") and raw["compute"] not in COMPUTED:
        raise ConfigError(f"{here}: compute {raw['compute']!r} is not one of {', '.join(COMPUTED)}")
    valid = raw.get("valid")
    return AnalogInput(**{**raw, "valid": tuple(valid) if valid else None})


@lru_cache(maxsize=1)
def load_model(path: Path = OBJECTS_FILE) -> Model:
    where = f"BACnet objects {path.name}"
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    points = points_by_name()
    ais = tuple(_analog_input(e, where, points) for e in _entries(document, "analog_input", AI_COUNT, where))
    avs = tuple(AnalogValue(**e) for e in _entries(document, "analog_value", AV_COUNT, where))
    bis = tuple(BinaryInput(**e) for e in _entries(document, "binary_input", BI_COUNT, where))
    tls = tuple(TrendLog(**e) for e in _entries(document, "trend_log", TL_COUNT, where))
    for av in avs:
        if av.setting not in SETTINGS:
            raise ConfigError(f"{where}: analog_value {av.instance}: setting {av.setting!r} is not one of "
                              f"{', '.join(SETTINGS)}")
    for bi in bis:
        if bi.alert not in ALERTS:
            raise ConfigError(f"{where}: binary_input {bi.instance}: alert {bi.alert!r} is not one of "
                              f"{', '.join(ALERTS)}")
    increments = {str(k): float(v) for k, v in document.get("cov_increment", {}).items()}
    for ai in ais:
        if ai.units not in increments:
            raise ConfigError(f"{where}: analog_input {ai.instance}: units {ai.units!r} have no [cov_increment]")
    by_point: dict[str, list[AnalogInput]] = {}
    for ai in ais:
        if ai.point:
            by_point.setdefault(ai.point, []).append(ai)
    return Model(dict(document.get("device", {})), ais, avs, bis, tls, increments, by_point)
