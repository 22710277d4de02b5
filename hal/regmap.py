"""The ADE9000 register map, loaded from ``ade9000_map.toml``.

The map is the one place that knows addresses, widths, access rules, reset values and bit
fields. The driver, the simulated chip and ``docs/ade9000-registers.md`` all read it from
here, so they cannot drift apart. Bit fields are reached through ``field_get``/``field_prep``
(the FIELD_GET/FIELD_PREP habit of the Linux IIO driver), never through hand-written shifts.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from hal.errors import ConfigError

MAP_PATH = Path(__file__).with_name("ade9000_map.toml")
PHASES = "ABC"


@dataclass(frozen=True)
class Field:
    name: str
    msb: int
    lsb: int
    desc: str

    @property
    def mask(self) -> int:
        return ((1 << (self.msb - self.lsb + 1)) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    name: str
    addr: int
    width: int                  # bits on the wire: 16 or 32
    access: str                 # "r", "rw" or "w1c"
    reset: int
    desc: str
    signed: bool = False
    volatile: bool = False
    crc: bool = False           # covered by the configuration CRC (CRC_RSLT)
    fields: dict[str, Field] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return self.width // 8

    @property
    def writable(self) -> bool:
        return self.access in ("rw", "w1c")

    @property
    def value_mask(self) -> int:
        return (1 << self.width) - 1

    def field(self, name: str) -> Field:
        try:
            return self.fields[name]
        except KeyError:
            raise KeyError(f"register {self.name} has no field {name!r}; fields: {', '.join(self.fields)}") from None

    def to_signed(self, raw: int) -> int:
        if self.signed and raw & (1 << (self.width - 1)):
            return raw - (1 << self.width)
        return raw


@dataclass(frozen=True)
class Constant:
    name: str
    value: float
    unit: str
    source: str
    why: str
    alternatives: tuple[float, ...] = ()


@dataclass(frozen=True)
class RegisterMap:
    registers: dict[str, Register]
    by_addr: dict[int, Register]
    constants: dict[str, Constant]
    chip: dict[str, Any]
    spi: dict[str, Any]
    waveform_buffer: dict[str, Any]
    burst_regions: tuple[tuple[int, int, str], ...]

    def __getitem__(self, name: str) -> Register:
        try:
            return self.registers[name]
        except KeyError:
            raise KeyError(f"ADE9000 has no register {name!r} in {MAP_PATH.name}") from None

    def const(self, name: str) -> float:
        return self.constants[name].value

    def is_burst(self, addr: int) -> bool:
        return any(lo <= addr <= hi for lo, hi, _ in self.burst_regions)


def field_get(reg: Register, name: str, value: int) -> int:
    f = reg.field(name)
    return (value & f.mask) >> f.lsb


def field_prep(reg: Register, name: str, value: int) -> int:
    f = reg.field(name)
    if value < 0 or value > (f.mask >> f.lsb):
        raise ValueError(f"{reg.name}.{name}: {value} does not fit in bits {f.msb}:{f.lsb}")
    return (value << f.lsb) & f.mask


def energy_join(hi: Register, lo: Register, hi_raw: int, lo_raw: int) -> int:
    """An energy accumulator from its xHR_HI (signed, upper bits) and xHR_LO (field LSBS) register values."""
    f = lo.field("LSBS")
    return (hi.to_signed(hi_raw) << (f.msb + 1)) | field_get(lo, "LSBS", lo_raw)


def energy_delta(hi: Register, lo: Register, new: int, old: int) -> int:
    """Energy accumulated from accumulator value ``old`` to ``new`` (as ``energy_join`` gives them): the signed
    difference modulo the accumulator width, so one wrap between the two readings costs nothing."""
    bits = hi.width + lo.field("LSBS").msb + 1
    d = (new - old) & ((1 << bits) - 1)
    return d - (1 << bits) if d >> (bits - 1) else d


def energy_split(hi: Register, lo: Register, value: int) -> tuple[int, int]:
    """An accumulator value -> the raw (xHR_HI, xHR_LO) register values; wraps at the accumulator width."""
    f = lo.field("LSBS")
    n = f.msb + 1
    raw = value & ((1 << (hi.width + n)) - 1)
    return (raw >> n) & hi.value_mask, field_prep(lo, "LSBS", raw & (f.mask >> f.lsb))


def bit(reg: Register, name: str) -> int:
    """Mask of a one-bit field, for status/mask registers."""
    return reg.field(name).mask


def _expand(entry: dict[str, Any]) -> list[Register]:
    fields = {name: Field(name, int(v[0]), int(v[1]), str(v[2])) for name, v in entry.get("fields", {}).items()}
    common: dict[str, Any] = dict(width=int(entry["width"]), access=str(entry["access"]), reset=int(entry["reset"]),
                  desc=str(entry["desc"]), signed=bool(entry.get("signed", False)),
                  volatile=bool(entry.get("volatile", False)), crc=bool(entry.get("crc", False)), fields=fields)
    if "phases" not in entry:
        return [Register(name=entry["name"], addr=int(entry["addr"]), **common)]
    out = []
    for i, phase in enumerate(entry["phases"]):
        name = entry["name"].replace("x", phase, 1)
        desc = common["desc"].replace("Phase x", f"Phase {phase}")
        out.append(Register(name=name, addr=int(entry["addr"]) + i * int(entry["stride"]),
                            **{**common, "desc": desc}))
    return out


def load_map(path: Path = MAP_PATH) -> RegisterMap:
    """Parse and check the map; a malformed map is a ConfigError naming the register."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"register map {path}: cannot be read: {exc}") from None
    registers: dict[str, Register] = {}
    by_addr: dict[int, Register] = {}
    for entry in doc["register"]:
        for reg in _expand(entry):
            if reg.name in registers or reg.addr in by_addr:
                raise ConfigError(f"register map {path}: {reg.name} at {reg.addr:#05x} is defined twice")
            if reg.width not in (16, 32) or reg.access not in ("r", "rw", "w1c"):
                raise ConfigError(f"register map {path}: {reg.name}: bad width or access")
            used = 0
            for f in reg.fields.values():
                if f.msb >= reg.width or f.lsb > f.msb or used & f.mask:
                    raise ConfigError(f"register map {path}: {reg.name}.{f.name} bits {f.msb}:{f.lsb} "
                                      "overlap another field or exceed the register width")
                used |= f.mask
            registers[reg.name] = reg
            by_addr[reg.addr] = reg
    constants = {
        name: Constant(name, c["value"], c["unit"], c["source"], " ".join(c["why"].split()),
                       tuple(c.get("alternatives", ())))
        for name, c in doc["constants"].items()
    }
    regions = tuple((int(r["start"]), int(r["end"]), str(r["name"])) for r in doc["burst_region"])
    return RegisterMap(registers, by_addr, constants, doc["chip"], doc["spi"], doc["waveform_buffer"], regions)


@lru_cache(maxsize=1)
def regmap() -> RegisterMap:
    return load_map()
