"""The Modbus register map, built from the point map, and its encoded image.

Every point whose ``modbus`` mapping names an ``address`` gets one register (or, for an array point, one
register per element) of its ``format``; ``coil`` and ``discrete`` keys put it on a bit as well. The map is
checked when it is built: overlapping registers, unknown formats, writable points that are not commands, and a
register that straddles a block edge are errors that name the point.

Reads never touch the measurement source directly: ``refresh(values)`` encodes every register of every block
into a byte image once, and ``read_registers`` slices that image. A request therefore costs the same whatever
the metrology is doing, and every register of one response comes from the same snapshot.

Mapping keys (all but ``address``/``coil``/``discrete`` optional)::

    modbus = {address = 2999, format = "float32", scale = 1.0, access = "r", length = 20,
              first = 1, count = 63, coil = 0, discrete = 0}

``scale``: register = value × scale; ``unit``: the register's unit when scale changes it (W -> kW).
``first``/``count``: which elements of an array point are mapped.
``length``: registers of a ``string``. ``access``: ``"r"`` (default) or ``"rw"`` (command points only).
``also``: more addresses where the same value is read as well (``also = [3143]``: where another meter family's
clients look for it), each with the same format and scale; read-only.
"""
from __future__ import annotations

import bisect
import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, Sequence

from firmware.comms.modbus import blocks as _blocks
from firmware.comms.modbus.blocks import Block
from firmware.comms.modbus.codecs import UNMAPPED_WORD_BYTES, Format, get_format
from firmware.comms.modbus.usermap import parse
from hal.errors import ConfigError

log = logging.getLogger("comms.modbus")

MAX_ADDRESS = 0xFFFF
OVERLAY_PATH = Path(__file__).with_name("mappings.toml")
_MAPPING_KEYS = {"address", "also", "format", "scale", "unit", "access", "length", "first", "count", "coil",
                 "discrete"}

# Exception codes (Modbus Application Protocol v1.1b3 §7; meaning per SPEC §7).
ILLEGAL_FUNCTION = 0x01
ILLEGAL_ADDRESS = 0x02
ILLEGAL_VALUE = 0x03
DEVICE_FAILURE = 0x04


class PointLike(Protocol):
    """What the map needs of a point (``firmware.points.Point``)."""

    @property
    def name(self) -> str: ...
    @property
    def unit(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def size(self) -> int: ...

    def mapping(self, protocol: str) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True)
class Register:
    """One value on the map: ``fmt.words`` registers from ``address``."""

    address: int
    fmt: Format
    point: str
    index: int | None       # element of an array point, None for a scalar
    scale: float
    writable: bool
    unit: str
    kind: str
    description: str

    @property
    def end(self) -> int:
        return self.address + self.fmt.words - 1

    @property
    def label(self) -> str:
        return self.point if self.index is None else f"{self.point}[{self.index}]"


@dataclass(frozen=True)
class Bit:
    address: int
    point: str
    writable: bool
    description: str


class WriteRefused(Exception):
    """A write that must be answered with an exception code (``code``) or not at all (``code`` None)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(code)
        self.code = code


def _checked_keys(name: str, mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    unknown = set(mapping) - _MAPPING_KEYS
    if unknown:
        raise ConfigError(f"point {name!r}: modbus key(s) {sorted(unknown)} not known; "
                          f"allowed {sorted(_MAPPING_KEYS)}")
    return mapping


def _point_mapping(point: PointLike) -> Mapping[str, Any] | None:
    mapping = point.mapping("modbus")
    return _checked_keys(point.name, mapping) if mapping else None


def load_overlay(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """Mappings from ``mappings.toml`` for points defined in other areas' files, by point name."""
    path = path or OVERLAY_PATH
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"modbus mappings {path}: {exc}") from None
    out: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(document.get("map", [])):
        name = entry.get("point")
        if not isinstance(name, str) or name in out:
            raise ConfigError(f"modbus mappings {path.name} entry {i}: 'point' missing or given twice")
        out[name] = {k: v for k, v in entry.items() if k != "point"}
    return out


def build_map(points: Iterable[PointLike] | None = None, user_map: Sequence[str] = ()) -> RegisterMap:
    """The meter's register map: the point map plus ``mappings.toml``, and the ``[modbus] user_map`` entries
    (``firmware.comms.modbus.usermap``) at the addresses they give."""
    if points is None:
        from firmware.points import load_points

        points = load_points()
    if not user_map:
        return RegisterMap.from_points(points, load_overlay())
    fixed = RegisterMap.from_points(points, load_overlay())
    extra = [reg for up in parse(user_map) for reg in _registers_of(up, up.modbus)]
    for reg in extra:
        clash = fixed.register_at(reg.address) or fixed.register_at(reg.end)
        if clash is not None or any(reg.address in b or reg.end in b for b in fixed.blocks):
            raise ConfigError(f"config: [modbus] user_map: {reg.label} at {reg.address}..{reg.end} overlaps the "
                              f"fixed register map" + (f" ({clash.label} at {clash.address})" if clash else "")
                              + "; choose addresses outside the blocks docs/modbus.md lists")
    try:
        return RegisterMap(fixed.registers + extra, fixed.coils.values(), fixed.discretes.values())
    except ConfigError as exc:
        raise ConfigError(f"config: [modbus] user_map: {exc}") from None


def check_user_map(config: Any) -> None:
    """The user map as the comms service builds it: every entry valid and no register on another
    (``firmware.config.checks``, when the configuration is saved)."""
    build_map(user_map=config["modbus"].user_map)


def _registers_of(point: PointLike, mapping: Mapping[str, Any]) -> list[Register]:
    where = f"point {point.name!r}"
    try:
        fmt = get_format(str(mapping.get("format", "float32")), mapping.get("length"))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    access = mapping.get("access", "r")
    if access not in ("r", "rw"):
        raise ConfigError(f"{where}: modbus access {access!r} not known; allowed 'r', 'rw'")
    writable = access == "rw"
    if writable and point.kind != "command":
        raise ConfigError(f"{where}: only command points may be written over Modbus (access = 'rw')")
    size = int(getattr(point, "size", 1) or 1)
    first = int(mapping.get("first", 0))
    count = int(mapping.get("count", size - first))
    if size == 1 and (first, count) != (0, 1):
        raise ConfigError(f"{where}: 'first'/'count' apply only to array points")
    if not (first >= 0 and count >= 1 and first + count <= size):
        raise ConfigError(f"{where}: elements {first}..{first + count - 1} outside the point's size {size}")
    also = mapping.get("also", [])
    if not isinstance(also, list) or not all(isinstance(a, int) and not isinstance(a, bool) for a in also):
        raise ConfigError(f"{where}: modbus 'also' must be a list of addresses, got {also!r}")
    if also and writable:
        raise ConfigError(f"{where}: a writable point has one address; 'also' is for values read in two places")
    out = []
    for address in (int(mapping["address"]), *also):
        for k in range(count):
            start = address + k * fmt.words
            if not 0 <= start <= MAX_ADDRESS - fmt.words + 1:
                raise ConfigError(f"{where}: register {start} is outside 0..{MAX_ADDRESS}")
            out.append(Register(start, fmt, point.name, None if size == 1 else first + k,
                                float(mapping.get("scale", 1.0)), writable, str(mapping.get("unit", point.unit)),
                                point.kind, getattr(point, "description", "")))
    return out


def _merge_blocks(fixed: Sequence[Block], registers: Sequence[Register]) -> list[Block]:
    """Fixed blocks plus one block per run of touching registers that lie outside every fixed block."""
    blocks = sorted(fixed, key=lambda b: b.start)
    for a, b in zip(blocks, blocks[1:]):
        if b.start <= a.end:
            raise ConfigError(f"modbus blocks '{a.title}' and '{b.title}' overlap")
    loose = [r for r in registers if not any(r.address in b for b in blocks)]
    for reg in loose:
        if any(reg.end in b for b in blocks):
            raise ConfigError(f"modbus register {reg.address}..{reg.end} of {reg.label} crosses the edge "
                              f"of its block")
    extra: list[list[int]] = []
    for reg in sorted(loose, key=lambda r: r.address):
        if extra and reg.address <= extra[-1][1] + 1:
            extra[-1][1] = max(extra[-1][1], reg.end)
        else:
            extra.append([reg.address, reg.end])
    blocks += [Block(s, e, "Registers mapped by points outside the fixed blocks", _blocks.OWN) for s, e in extra]
    return sorted(blocks, key=lambda b: b.start)


class _Span:
    """A run of blocks with no address between them: a read may cross their common edges."""

    __slots__ = ("start", "end", "cont", "tail", "image", "slots", "na_image")

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end = start, end
        n = end - start + 1
        self.cont = bytearray(n)       # 1: this word continues a value (a read must not start here)
        self.tail = bytearray(n)       # 1: a value goes on after this word (a read must not end here)
        self.slots: list[tuple[int, Register]] = []
        self.na_image = bytearray(UNMAPPED_WORD_BYTES * n)
        self.image = bytes(self.na_image)


class RegisterMap:
    def __init__(self, registers: Iterable[Register], coils: Iterable[Bit] = (), discretes: Iterable[Bit] = (),
                 register_blocks: Sequence[Block] = _blocks.REGISTER_BLOCKS,
                 coil_blocks: Sequence[Block] = _blocks.COIL_BLOCKS,
                 discrete_blocks: Sequence[Block] = _blocks.DISCRETE_BLOCKS) -> None:
        self.registers = sorted(registers, key=lambda r: r.address)
        for a, b in zip(self.registers, self.registers[1:]):
            if b.address <= a.end:
                raise ConfigError(f"modbus register {b.address} of {b.label} overlaps {a.label} "
                                  f"({a.address}..{a.end})")
        self.blocks = _merge_blocks(register_blocks, self.registers)
        self._spans: list[_Span] = []
        for block in self.blocks:
            if self._spans and block.start == self._spans[-1].end + 1:
                old = self._spans.pop()
                self._spans.append(_Span(old.start, block.end))
            else:
                self._spans.append(_Span(block.start, block.end))
        self._span_starts = [s.start for s in self._spans]
        self._by_address: dict[int, Register] = {}
        for reg in self.registers:
            span = self._span_of(reg.address)
            if span is None or reg.end > span.end:
                raise ConfigError(f"modbus register {reg.address}..{reg.end} of {reg.label} crosses the edge "
                                  f"of its block")
            offset = reg.address - span.start
            span.slots.append((offset * 2, reg))
            for w in range(reg.fmt.words):
                self._by_address[reg.address + w] = reg
                span.cont[offset + w] = w > 0
                span.tail[offset + w] = w < reg.fmt.words - 1
                span.na_image[(offset + w) * 2:(offset + w + 1) * 2] = reg.fmt.na[2 * w:2 * w + 2]
            span.image = bytes(span.na_image)
        self.coils = self._bits(coils, "coil")
        self.discretes = self._bits(discretes, "discrete input")
        self.coil_blocks = list(coil_blocks) + self._loose_bit_blocks(self.coils, coil_blocks)
        self.discrete_blocks = list(discrete_blocks) + self._loose_bit_blocks(self.discretes, discrete_blocks)
        self._bit_values: dict[str, bool] = {}
        self.unknown_overlay: list[str] = []

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_points(cls, points: Iterable[PointLike], overlay: Mapping[str, Mapping[str, Any]] | None = None,
                    **blocks: Any) -> RegisterMap:
        """The map of ``points``; ``overlay`` gives mappings (by point name) for points that carry none."""
        registers: list[Register] = []
        coils: list[Bit] = []
        discretes: list[Bit] = []
        overlay = dict(overlay or {})
        seen: set[str] = set()
        for point in points:
            seen.add(point.name)
            mapping = _point_mapping(point)
            extra = overlay.get(point.name)
            if mapping is not None and extra is not None:
                raise ConfigError(f"point {point.name!r} has a modbus mapping in its own file and in "
                                  f"{OVERLAY_PATH.name}; keep one")
            if extra is not None:
                mapping = _checked_keys(point.name, extra)
            if mapping is None:
                continue
            if "address" in mapping:
                registers += _registers_of(point, mapping)
            is_command = point.kind == "command"
            for key, out in (("coil", coils), ("discrete", discretes)):
                if key in mapping:
                    address = int(mapping[key])
                    if not 0 <= address <= MAX_ADDRESS:
                        raise ConfigError(f"point {point.name!r}: {key} {address} outside 0..{MAX_ADDRESS}")
                    if key == "coil" and not is_command:
                        raise ConfigError(f"point {point.name!r}: only command points may be coils")
                    out.append(Bit(address, point.name, key == "coil", getattr(point, "description", "")))
        regmap = cls(registers, coils, discretes, **blocks)
        regmap.unknown_overlay = sorted(set(overlay) - seen)
        if regmap.unknown_overlay:
            log.warning("modbus: %s names points the point map does not have: %s", OVERLAY_PATH.name,
                        ", ".join(regmap.unknown_overlay))
        return regmap

    @staticmethod
    def _bits(bits: Iterable[Bit], what: str) -> dict[int, Bit]:
        out: dict[int, Bit] = {}
        for bit in bits:
            if bit.address in out:
                raise ConfigError(f"modbus {what} {bit.address} is mapped by both {out[bit.address].point!r} "
                                  f"and {bit.point!r}")
            out[bit.address] = bit
        return out

    @staticmethod
    def _loose_bit_blocks(bits: Mapping[int, Bit], fixed: Sequence[Block]) -> list[Block]:
        return [Block(a, a, "Bit mapped outside the fixed blocks", _blocks.OWN)
                for a in sorted(bits) if not any(a in b for b in fixed)]

    def register_at(self, address: int) -> Register | None:
        return self._by_address.get(address)

    def _span_of(self, address: int) -> _Span | None:
        i = bisect.bisect_right(self._span_starts, address) - 1
        if i < 0:
            return None
        span = self._spans[i]
        return span if address <= span.end else None

    # ------------------------------------------------------------------ values

    def refresh(self, values: Mapping[str, Any]) -> None:
        """Encode every register from ``values`` (point name -> number, array or text; absent = not available)."""
        for span in self._spans:
            image = bytearray(span.na_image)
            for offset, reg in span.slots:
                value = values.get(reg.point)
                if value is not None and reg.index is not None:
                    try:
                        value = value[reg.index]
                    except (IndexError, TypeError, KeyError):
                        value = None
                data = reg.fmt.encode(value, reg.scale)
                image[offset:offset + len(data)] = data
            span.image = bytes(image)
        self._bit_values = {bit.point: _truthy(values.get(bit.point)) for bit in self.discretes.values()}

    # ------------------------------------------------------------------ requests

    def check_read(self, start: int, count: int) -> tuple[_Span, int] | int:
        """The span and byte offset of a valid register read, or the exception code it earns."""
        span = self._span_of(start)
        end = start + count - 1
        if span is None or end > span.end:
            return ILLEGAL_ADDRESS
        off = start - span.start
        if span.cont[off] or span.tail[end - span.start]:
            return ILLEGAL_VALUE    # part of a multi-word value (ION: exception 03)
        return span, off * 2

    def read_registers(self, start: int, count: int) -> bytes | int:
        """``count`` registers from ``start`` as bytes, or an exception code."""
        found = self.check_read(start, count)
        if isinstance(found, int):
            return found
        span, off = found
        return span.image[off:off + 2 * count]

    def check_write(self, start: int, count: int) -> list[Register]:
        """The registers a write of ``count`` words from ``start`` covers whole; raise WriteRefused if it may not.

        ION7400 user manual, "Modbus invalid write registers response": a write to an address with no register
        gets no answer and stores nothing; a write to a read-only register gets exception 03, as does a write that
        covers part of a multi-word value.
        """
        covered: list[Register] = []
        for address in range(start, start + count):
            reg = self._by_address.get(address)
            if reg is None:
                raise WriteRefused(None)
            if not covered or covered[-1] is not reg:
                covered.append(reg)
        if covered[0].address < start or covered[-1].end > start + count - 1:
            raise WriteRefused(ILLEGAL_VALUE)
        if any(not reg.writable for reg in covered):
            raise WriteRefused(ILLEGAL_VALUE)
        return covered

    def read_bits(self, table: str, start: int, count: int) -> list[bool] | int:
        bits, blocks = ((self.coils, self.coil_blocks) if table == "coil"
                        else (self.discretes, self.discrete_blocks))
        end = start + count - 1
        if not any(b.start <= start and end <= b.end for b in blocks):
            return ILLEGAL_ADDRESS
        if table == "coil":
            return [False] * count     # command coils read 0: a command is an action, not a state
        return [self._bit_values.get(bits[a].point, False) if a in bits else False
                for a in range(start, end + 1)]

    def check_coil_write(self, start: int, count: int) -> list[Bit]:
        covered = []
        for address in range(start, start + count):
            bit = self.coils.get(address)
            if bit is None:
                raise WriteRefused(None)
            covered.append(bit)
        return covered


def _truthy(value: Any) -> bool:
    try:
        return bool(value) and value == value
    except (TypeError, ValueError):
        return False
