"""What the SNMP agent serves: the catalogue's points that carry an ``snmp`` mapping, under the meter's MIB
(``[snmp] enterprise_oid`` . 1), and the standard groups a manager expects (MIB-2 system and snmp, the engine,
MPD and USM statistics).

A point's mapping (``firmware/points/maps/snmp.toml``) gives ``oid`` (below meterObjects, ``GROUP.N``),
``type`` (``integer``: Integer32; ``unsigned``: Unsigned32; ``counter64``), ``decimals`` (the value is sent
times 10^decimals, rounded, and the MIB's DISPLAY-HINT puts the point back) and optionally ``scale`` (a
multiplier applied first, with ``unit`` the unit that results, e.g. 0.001 and kW). A value that is not
available (NaN) has no instance: a Get answers noSuchInstance and a walk passes over it. Values outside the
type's range are held at its ends.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping

from firmware.comms.snmp import ber
from firmware.comms.snmp.ber import Oid
from firmware.points import Point, load_points
from hal.errors import ConfigError

# meterObjects' groups: arc, MIB descriptor, description (docs/snmp.md and the MIB take them from here)
GROUPS = {
    1: ("meterReadings", "Instantaneous readings: voltages, currents, powers, power factor, frequency, distortion."),
    2: ("meterEnergies", "Energy registers (delivered, received, their sum and difference)."),
    3: ("meterStatus", "Status of the meter: revenue lock, test mode, time synchronisation, power quality."),
    4: ("meterAlarms", "Alarms: active and unacknowledged counts, the alarm bell, unread events."),
}
EVENT_GROUP = 5                   # meterEventObjects: what the notifications carry
TYPES = {"integer": ("Integer32", ber.INTEGER, -(1 << 31), (1 << 31) - 1),
         "unsigned": ("Unsigned32", ber.GAUGE32, 0, (1 << 32) - 1),
         "counter64": ("Counter64", ber.COUNTER64, 0, (1 << 64) - 1)}
MAX_DECIMALS = 6

MIB2_SYSTEM = ber.oid("1.3.6.1.2.1.1")
MIB2_SNMP = ber.oid("1.3.6.1.2.1.11")
SNMP_ENGINE = ber.oid("1.3.6.1.6.3.10.2.1")
MPD_STATS = ber.oid("1.3.6.1.6.3.11.2.1")
USM_STATS = ber.oid("1.3.6.1.6.3.15.1.1")
TARGET_STATS = ber.oid("1.3.6.1.6.3.12.1")
SYS_UPTIME = MIB2_SYSTEM + (3, 0)
SNMP_TRAP_OID = ber.oid("1.3.6.1.6.3.1.1.4.1.0")

# Counters of the agent, by name, and where each is served (Counter32).
COUNTERS = {
    "snmpInPkts": MIB2_SNMP + (1, 0), "snmpInBadVersions": MIB2_SNMP + (3, 0),
    "snmpInBadCommunityNames": MIB2_SNMP + (4, 0), "snmpInBadCommunityUses": MIB2_SNMP + (5, 0),
    "snmpInASNParseErrs": MIB2_SNMP + (6, 0), "snmpSilentDrops": MIB2_SNMP + (31, 0),
    "snmpProxyDrops": MIB2_SNMP + (32, 0),
    "snmpUnknownSecurityModels": MPD_STATS + (1, 0), "snmpInvalidMsgs": MPD_STATS + (2, 0),
    "snmpUnknownPDUHandlers": MPD_STATS + (3, 0),
    "snmpUnavailableContexts": TARGET_STATS + (4, 0), "snmpUnknownContexts": TARGET_STATS + (5, 0),
    "usmStatsUnsupportedSecLevels": USM_STATS + (1, 0), "usmStatsNotInTimeWindows": USM_STATS + (2, 0),
    "usmStatsUnknownUserNames": USM_STATS + (3, 0), "usmStatsUnknownEngineIDs": USM_STATS + (4, 0),
    "usmStatsWrongDigests": USM_STATS + (5, 0), "usmStatsDecryptionErrors": USM_STATS + (6, 0),
}


@dataclass(frozen=True)
class MeterObject:
    """One catalogue point as an SNMP scalar."""

    point: Point
    oid: Oid                       # the object (its one instance is oid + (0,))
    descriptor: str                # MIB name: "meter" + the point name in CamelCase
    syntax: str                    # integer, unsigned, counter64
    decimals: int
    scale: float
    unit: str

    def encode(self, value: float) -> bytes | None:
        if not math.isfinite(value):
            return None
        _, tag, low, high = TYPES[self.syntax]
        n = min(high, max(low, round(value * self.scale * 10 ** self.decimals)))
        return ber.encode_int(n, tag) if tag == ber.INTEGER else ber.encode_unsigned(n, tag)


def descriptor(name: str) -> str:
    return "meter" + "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def module_oid(enterprise: Oid) -> Oid:
    """The MIB module (openMeterMIB) below the enterprise OID."""
    return enterprise + (1,)


def objects_root(enterprise: Oid) -> Oid:
    return module_oid(enterprise) + (1,)


@lru_cache(maxsize=4)
def meter_objects(enterprise: Oid) -> tuple[MeterObject, ...]:
    """Every point of the catalogue with an snmp mapping, in OID order; a bad mapping is a ConfigError."""
    root = objects_root(enterprise)
    out: list[MeterObject] = []
    seen: dict[Oid, str] = {}
    for p in load_points():
        m = p.mapping("snmp")
        if m is None:
            continue
        where = f"point map: {p.name}'s snmp mapping"
        if p.size != 1 or p.kind in ("identity", "command", "setting"):
            raise ConfigError(f"{where}: only scalar quantities are carried by SNMP")
        if set(m) - {"oid", "type", "decimals", "scale", "unit"}:
            raise ConfigError(f"{where}: unknown keys {sorted(set(m) - {'oid', 'type', 'decimals', 'scale', 'unit'})}")
        try:
            rel = ber.oid(str(m["oid"]))
        except (KeyError, ValueError):
            raise ConfigError(f"{where}: 'oid' is GROUP.N (below meterObjects)") from None
        if len(rel) != 2 or rel[0] not in GROUPS or rel[1] < 1:
            raise ConfigError(f"{where}: 'oid' {m['oid']!r} is not GROUP.N with GROUP one of {sorted(GROUPS)}")
        syntax = m.get("type", "integer")
        decimals = m.get("decimals", 0)
        if syntax not in TYPES or not isinstance(decimals, int) or not 0 <= decimals <= MAX_DECIMALS:
            raise ConfigError(f"{where}: type is one of {', '.join(TYPES)}, decimals 0..{MAX_DECIMALS}")
        full = root + rel
        if full in seen:
            raise ConfigError(f"{where}: OID {m['oid']} is also {seen[full]}'s")
        seen[full] = p.name
        out.append(MeterObject(p, full, descriptor(p.name), syntax, decimals, float(m.get("scale", 1.0)),
                               str(m.get("unit", p.unit))))
    return tuple(sorted(out, key=lambda o: o.oid))


Getter = Callable[[], "bytes | None"]


class Tree:
    """The agent's instances in OID order: exact Get and the next instance after a name (GetNext, GetBulk)."""

    def __init__(self, entries: Mapping[Oid, Getter]) -> None:
        self.oids = sorted(entries)
        self.getters = [entries[o] for o in self.oids]
        self.index = {o: i for i, o in enumerate(self.oids)}

    def get(self, name: Oid) -> tuple[int, bytes]:
        """(0, value), or (exception tag, b"") for an instance the agent does not have now."""
        i = self.index.get(name)
        if i is None:
            parent = self.index.get(name[:-1] + (0,)) if name and name[-1] != 0 else None
            return (ber.NO_SUCH_INSTANCE if parent is not None else ber.NO_SUCH_OBJECT), b""
        value = self.getters[i]()
        return (0, value) if value is not None else (ber.NO_SUCH_INSTANCE, b"")

    def next(self, name: Oid) -> tuple[Oid, bytes] | None:
        """The first instance after ``name`` that has a value; None past the last (endOfMibView)."""
        i = bisect_right(self.oids, name)
        while i < len(self.oids):
            value = self.getters[i]()
            if value is not None:
                return self.oids[i], value
            i += 1
        return None


def text(value: str) -> bytes:
    return ber.encode_octets(value.encode("utf-8")[:255])


def counters_getters(counters: dict[str, int]) -> dict[Oid, Getter]:
    def counter(name: str) -> Getter:
        return lambda: ber.encode_unsigned(counters[name] & 0xFFFFFFFF, ber.COUNTER32)
    return {where: counter(name) for name, where in COUNTERS.items()}


def catalogue_getters(objects: tuple[MeterObject, ...], encoded: dict[Oid, bytes | None]) -> dict[Oid, Getter]:
    def reading(instance: Oid) -> Getter:
        return lambda: encoded.get(instance)
    return {o.oid + (0,): reading(o.oid + (0,)) for o in objects}


def encode_values(objects: tuple[MeterObject, ...], values: Mapping[str, Any], into: dict[Oid, bytes | None]) -> None:
    for o in objects:
        value = values.get(o.point.name)
        try:
            into[o.oid + (0,)] = None if value is None else o.encode(float(value))
        except (TypeError, ValueError):
            into[o.oid + (0,)] = None
