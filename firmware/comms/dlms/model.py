"""The meter's COSEM model: every object the server serves, built from the catalogue and the configuration,
and the associations (which client sees which objects with which rights)."""
from __future__ import annotations

from dataclasses import dataclass, field

from firmware.catalogue import commands
from firmware.comms.dlms import axdr
from firmware.comms.dlms.objects import (
    ASSOCIATION_LN,
    CLOCK,
    CLOCK_LN,
    DATA,
    DEMAND_REGISTER,
    EVENT_LOG_LN,
    EXTENDED_REGISTER,
    LOAD_PROFILE_LN,
    MANAGEMENT_ASSOCIATION_LN,
    PROFILE_GENERIC,
    PUBLIC_ASSOCIATION_LN,
    REGISTER,
    SCRIPT_TABLE,
    UNITS,
    CosemObject,
    ln_bytes,
)
from firmware.points import load_points
from hal.errors import ConfigError

PUBLIC_SAP, MANAGEMENT_SAP = 16, 1
SERVER_SAP = 1                     # the logical device (the management logical device, JEMStar: 0x0001)
VALUE_TYPES = {"float64": axdr.FLOAT64, "float32": axdr.FLOAT32, "long64": axdr.LONG64,
               "long64_unsigned": axdr.LONG64_UNSIGNED, "double_long": axdr.DOUBLE_LONG,
               "double_long_unsigned": axdr.DOUBLE_LONG_UNSIGNED, "long_unsigned": axdr.LONG_UNSIGNED,
               "octet_string": axdr.OCTET_STRING}
LP_SCALER = -2                     # load-profile channel values: hundredths of their unit
POINT_CLASSES = (DATA, REGISTER, EXTENDED_REGISTER, DEMAND_REGISTER)
_KEYS = {"code", "class", "scaler", "type", "public", "time"}


def point_objects() -> list[CosemObject]:
    """The Data and Register objects of every point the point map gives an ``obis`` mapping."""
    out = []
    points = {p.name: p for p in load_points()}
    for p in points.values():
        m = p.mapping("obis")
        if m is None:
            continue
        where = f"obis mapping of {p.name!r}"
        if set(m) - _KEYS or "code" not in m:
            raise ConfigError(f"{where}: keys {sorted(_KEYS)} (code required)")
        cls = int(m.get("class", REGISTER))
        if cls not in POINT_CLASSES:
            raise ConfigError(f"{where}: class {cls} is not one of {POINT_CLASSES}")
        if p.unit not in UNITS:
            raise ConfigError(f"{where}: unit {p.unit!r} has no COSEM unit (firmware/comms/dlms/objects.py UNITS)")
        if p.size != 1:
            raise ConfigError(f"{where}: array points are not carried")
        default_type = "octet_string" if p.kind == "identity" else "double_long"
        vtype = VALUE_TYPES.get(m.get("type", default_type))
        if vtype is None:
            raise ConfigError(f"{where}: type {m.get('type')!r} is not one of {sorted(VALUE_TYPES)}")
        time_point = m.get("time", "")
        if time_point and (cls != EXTENDED_REGISTER or time_point not in points):
            raise ConfigError(f"{where}: 'time' names a point and belongs to an extended register (class 4)")
        ln_bytes(m["code"])
        out.append(CosemObject(cls, m["code"], p.description, p.name, int(m.get("scaler", 0)), UNITS[p.unit],
                               vtype, time_point, public=bool(m.get("public", False))))
    return out


def script_objects() -> list[CosemObject]:
    """Script tables of the catalogue's commands that name an ``obis`` script (``LN#script``)."""
    tables: dict[str, CosemObject] = {}
    for c in commands():
        if not c.obis:
            continue
        ln, _, script = c.obis.partition("#")
        ln_bytes(ln)
        table = tables.setdefault(ln, CosemObject(SCRIPT_TABLE, ln, "Script table: " + ln))
        sid = int(script or 1)
        if sid in table.scripts:
            raise ConfigError(f"catalogue: script {c.obis} is named by two commands")
        table.scripts[sid] = c.name
    for table in tables.values():
        table.description = "Script table: " + ", ".join(f"{k} = {v}" for k, v in sorted(table.scripts.items()))
    return list(tables.values())


def lp_channel_ln(index: int) -> str:
    """Register of the load profile's channel ``index`` (0-based): manufacturer-specific B = 128."""
    return f"1.128.99.1.{index + 1}.255"


@dataclass
class Model:
    objects: list[CosemObject]
    lp_channels: list[tuple[str, CosemObject]] = field(default_factory=list)

    def by_key(self) -> dict[tuple[int, bytes], CosemObject]:
        return {(o.class_id, o.ln_raw): o for o in self.objects}


def build_model(lp_channels: tuple[str, ...] = ()) -> Model:
    fixed = [CosemObject(CLOCK, CLOCK_LN, "Clock (UTC)", public=True, writable=frozenset({2})),
             CosemObject(PROFILE_GENERIC, LOAD_PROFILE_LN, "Load profile"),
             CosemObject(PROFILE_GENERIC, EVENT_LOG_LN, "Event log"),
             CosemObject(ASSOCIATION_LN, PUBLIC_ASSOCIATION_LN, "Association LN of the public client (SAP 16)",
                         public=True),
             CosemObject(ASSOCIATION_LN, MANAGEMENT_ASSOCIATION_LN, "Association LN of the management client (SAP 1)")]
    channels = [(name, CosemObject(REGISTER, lp_channel_ln(i), f"Load-profile channel {i + 1}: {name}",
                                   scaler=LP_SCALER, unit=_lp_unit(name), value_type=axdr.DOUBLE_LONG))
                for i, name in enumerate(lp_channels)]
    objects = fixed + point_objects() + script_objects() + [c for _, c in channels]
    seen: dict[str, str] = {}
    for o in objects:
        if o.ln in seen:
            raise ConfigError(f"DLMS: OBIS code {o.ln} is given to both {seen[o.ln]} and {o.point or o.description}")
        seen[o.ln] = o.point or o.description
    return Model(objects, channels)


def _lp_unit(name: str) -> int:
    base = name.split(".")[0]
    for prefix, unit in (("varh", "varh"), ("vah", "VAh"), ("wh", "Wh"), ("ah", "Ah"), ("avg_pf", ""),
                         ("avg_p", "W"), ("avg_q", "var"), ("avg_s", "VA"), ("avg_freq", "Hz"), ("avg_v", "V"),
                         ("avg_i", "A")):
        if base.startswith(prefix):
            return UNITS[unit]
    return UNITS[""]
