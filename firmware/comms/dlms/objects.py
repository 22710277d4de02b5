"""COSEM objects (IEC 62056-6-2 interface classes) of the meter, and what each attribute reads.

Every object is projected from the catalogue: a point with an ``obis`` mapping
(``firmware/points/maps/obis.toml``: code, class, scaler) becomes a Data (1), Register (3), Extended register
(4) or Demand register (5) object, a command with an ``obis`` slot (``firmware/catalogue/table.py``) a Script
table (9) entry. The Clock, the load profile, the event log and the Association LN objects are the fixed
COSEM objects of every meter (``FIXED``). This module declares no quantity of its own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from firmware.comms.dlms import axdr
from firmware.comms.dlms.axdr import Typed

DATA, REGISTER, EXTENDED_REGISTER, DEMAND_REGISTER = 1, 3, 4, 5
PROFILE_GENERIC, CLOCK, SCRIPT_TABLE, ASSOCIATION_LN = 7, 8, 9, 15
CLASS_VERSIONS = {DATA: 0, REGISTER: 0, EXTENDED_REGISTER: 0, DEMAND_REGISTER: 0, PROFILE_GENERIC: 1, CLOCK: 0,
                  SCRIPT_TABLE: 0, ASSOCIATION_LN: 1}
CLASS_NAMES = {DATA: "Data", REGISTER: "Register", EXTENDED_REGISTER: "Extended register",
               DEMAND_REGISTER: "Demand register", PROFILE_GENERIC: "Profile generic", CLOCK: "Clock",
               SCRIPT_TABLE: "Script table", ASSOCIATION_LN: "Association LN"}
ATTRIBUTE_COUNTS = {DATA: 2, REGISTER: 3, EXTENDED_REGISTER: 5, DEMAND_REGISTER: 9, PROFILE_GENERIC: 8,
                    CLOCK: 9, SCRIPT_TABLE: 2, ASSOCIATION_LN: 9}

# The point map's SI units as COSEM unit enumerations (IEC 62056-6-2 table "Enumerated values for units").
UNITS = {"": 255, "s": 7, "min": 6, "h": 5, "°": 8, "deg": 8, "°C": 9, "W": 27, "VA": 28, "var": 29, "Wh": 30,
         "VAh": 31, "varh": 32, "A": 33, "V": 35, "Hz": 44, "V2h": 48, "A2h": 49, "%": 56, "Ah": 57, "Qh": 32}

CLOCK_LN = "0.0.1.0.0.255"
LOAD_PROFILE_LN = "1.0.99.1.0.255"
EVENT_LOG_LN = "0.0.99.98.0.255"
CURRENT_ASSOCIATION_LN = "0.0.40.0.0.255"
PUBLIC_ASSOCIATION_LN = "0.0.40.0.1.255"
MANAGEMENT_ASSOCIATION_LN = "0.0.40.0.2.255"

# data-access-result codes
SUCCESS, HARDWARE_FAULT, TEMPORARY_FAILURE, READ_WRITE_DENIED, UNDEFINED_OBJECT = 0, 1, 2, 3, 4
TYPE_UNMATCHED, SCOPE_VIOLATED, UNAVAILABLE, OTHER = 12, 13, 11, 250
NO_LONG_GET = 16
# action-result codes
ACTION_SUCCESS, ACTION_DENIED, ACTION_UNAVAILABLE, ACTION_OTHER = 0, 3, 11, 250


class AccessError(Exception):
    """An attribute or method refused: ``code`` is the data-access-result (or action-result)."""

    def __init__(self, code: int, why: str = "") -> None:
        super().__init__(why or str(code))
        self.code = code


def ln_bytes(text: str) -> bytes:
    parts = [int(p) for p in text.split(".")]
    if len(parts) != 6 or not all(0 <= p <= 255 for p in parts):
        raise ValueError(f"{text!r} is not an OBIS code A.B.C.D.E.F (0..255 each)")
    return bytes(parts)


def ln_text(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


class Context(Protocol):
    """What objects read and do, given by the application (``firmware.comms.dlms.app``)."""

    def values(self) -> dict[str, Any]: ...

    def now(self) -> datetime: ...

    def set_time(self, when: datetime) -> None: ...

    def profile(self, since_ts: float | None, until_ts: float | None, limit: int) -> list[dict[str, Any]]: ...

    def events(self, since_ts: float | None, until_ts: float | None, limit: int) -> list[dict[str, Any]]: ...

    def run(self, command: str) -> None: ...


@dataclass
class CosemObject:
    class_id: int
    ln: str
    description: str = ""
    point: str = ""                   # the catalogue point (Data/Register) or command (Script table)
    scaler: int = 0
    unit: int = 255
    value_type: int = axdr.FLOAT64
    time_point: str = ""              # Extended register: the point holding the capture time (s since 1970)
    scripts: dict[int, str] = field(default_factory=dict)   # Script table: script id -> catalogue command
    public: bool = False
    writable: frozenset[int] = frozenset()

    @property
    def ln_raw(self) -> bytes:
        return ln_bytes(self.ln)

    @property
    def version(self) -> int:
        return CLASS_VERSIONS[self.class_id]


# ---------------------------------------------------------------------------------------------- value encodings

def scaled(obj: CosemObject, value: Any) -> Typed:
    """A point's value in the object's type and scaler; a value not available is null-data."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return Typed(axdr.NULL, None)
    if not math.isfinite(v):
        return Typed(axdr.NULL, None)
    v /= 10.0 ** obj.scaler
    if obj.value_type in (axdr.FLOAT64, axdr.FLOAT32):
        return Typed(obj.value_type, v)
    limits = {axdr.LONG64: (-2**63, 2**63 - 1), axdr.LONG64_UNSIGNED: (0, 2**64 - 1),
              axdr.DOUBLE_LONG: (-2**31, 2**31 - 1), axdr.DOUBLE_LONG_UNSIGNED: (0, 2**32 - 1),
              axdr.LONG_UNSIGNED: (0, 65535), axdr.UNSIGNED: (0, 255), axdr.LONG: (-32768, 32767)}
    lo, hi = limits[obj.value_type]
    return Typed(obj.value_type, max(lo, min(hi, int(round(v)))))


def scaler_unit(obj: CosemObject) -> Typed:
    return Typed(axdr.STRUCTURE, [Typed(axdr.INTEGER, obj.scaler), Typed(axdr.ENUM, obj.unit)])


def octets(text: Any) -> Typed:
    return Typed(axdr.OCTET_STRING, str(text if text is not None else "").encode("utf-8")[:255])


def date_time_of(ts: Any) -> Typed:
    try:
        t = float(ts)
    except (TypeError, ValueError):
        return Typed(axdr.OCTET_STRING, axdr.date_time(None))
    if not math.isfinite(t) or t <= 0:
        return Typed(axdr.OCTET_STRING, axdr.date_time(None))
    return Typed(axdr.OCTET_STRING, axdr.date_time(datetime.fromtimestamp(t, timezone.utc)))
