"""Modbus register formats: how one value becomes 1, 2 or 4 big-endian 16-bit words, and back.

The formats and their "not available" patterns are those of the ION7400 user manual, "Supported Modbus
features" and "Modbus invalid read registers responses" (SPEC §7): u16, s16, u32, s32, u32-M10K, s32-M10K,
float32, s64, high word first. A value that is missing, NaN or not representable in the format encodes as that
format's "not available" pattern, never as a clipped or wrapped number, so that a client can tell "no value"
from a value.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Callable

# A word of a register inside a mapped block that carries no value (ION manual, "Unmapped (unused) register").
UNMAPPED_WORD = 0x8000
UNMAPPED_WORD_BYTES = UNMAPPED_WORD.to_bytes(2, "big")

# Each M10K word carries 0..9999 (ION "32B-M10K": value = high × 10,000 + low).
_M10K = 10_000


class EncodeError(ValueError):
    """A value cannot be written to a register in this format (bad type or out of range)."""


@dataclass(frozen=True)
class Format:
    name: str
    words: int
    na: bytes                                   # the "not available" pattern, words × 2 bytes
    _pack: Callable[[Any], bytes]
    _unpack: Callable[[bytes], Any]
    signed: bool = False
    integer: bool = True
    description: str = ""

    def encode(self, value: Any, scale: float = 1.0) -> bytes:
        """Bytes for ``value × scale``; the not-available pattern when it has no representable value."""
        if value is None:
            return self.na
        try:
            scaled = float(value) * scale if self.integer or scale != 1.0 else value
            return self._pack(scaled)
        except (EncodeError, TypeError, ValueError, OverflowError, struct.error):
            return self.na

    def decode(self, data: bytes, scale: float = 1.0) -> Any:
        """The value a client reads (``None`` for the not-available pattern)."""
        if len(data) != 2 * self.words:
            raise ValueError(f"{self.name} needs {2 * self.words} bytes, got {len(data)}")
        if data == self.na:
            return None
        value = self._unpack(data)
        return value / scale if scale != 1.0 else value


def _as_int(value: Any) -> int:
    """A value for an integer register: floats are rounded; NaN and infinities cannot be encoded."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EncodeError("not finite")
        value = round(value)
    return int(value)


def _int_packer(fmt: str, lo: int, hi: int) -> Callable[[Any], bytes]:
    def pack(value: Any) -> bytes:
        value = _as_int(value)
        if not lo <= value <= hi:
            raise EncodeError(f"{value} outside {lo}..{hi}")
        return struct.pack(fmt, value)
    return pack


def _int_unpacker(fmt: str) -> Callable[[bytes], int]:
    return lambda data: struct.unpack(fmt, data)[0]


# The not-available patterns reserve one code of each integer range, so the range a value may take is one less.
_S16 = (-0x7FFF, 0x7FFF)
_U16 = (0, 0xFFFE)
_S32 = (-0x7FFF_FFFF, 0x7FFF_FFFF)
_U32 = (0, 0xFFFF_FFFE)
_S64 = (-0x7FFF_FFFF_FFFF_FFFF, 0x7FFF_FFFF_FFFF_FFFF)


def _pack_float32(value: Any) -> bytes:
    f = float(value)
    if math.isnan(f):
        raise EncodeError("NaN")
    if math.isfinite(f) and abs(f) > 3.4028234663852886e38:
        # Out of float32 range: IEEE would give ±inf; ±inf is what it is.
        f = math.copysign(math.inf, f)
    return struct.pack(">f", f)


def _unpack_float32(data: bytes) -> float:
    return struct.unpack(">f", data)[0]


def _pack_m10k(signed: bool) -> Callable[[Any], bytes]:
    limit = _M10K * _M10K - 1

    def pack(value: Any) -> bytes:
        value = _as_int(value)
        if not (-limit if signed else 0) <= value <= limit:
            raise EncodeError(f"{value} outside the M10K range")
        # Both words carry the value's sign (ION "Signed 32B-M10K").
        magnitude = abs(value)
        high, low = divmod(magnitude, _M10K)
        if value < 0:
            high, low = -high, -low
        return struct.pack(">hh" if signed else ">HH", high, low)
    return pack


def _unpack_m10k(signed: bool) -> Callable[[bytes], int]:
    def unpack(data: bytes) -> int:
        high, low = struct.unpack(">hh" if signed else ">HH", data)
        return high * _M10K + low
    return unpack


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("u16", 1, b"\xff\xff", _int_packer(">H", *_U16), _int_unpacker(">H"),
           description="unsigned 16-bit integer"),
    Format("s16", 1, b"\x80\x00", _int_packer(">h", *_S16), _int_unpacker(">h"), signed=True,
           description="signed 16-bit integer"),
    Format("u32", 2, b"\xff\xff\xff\xff", _int_packer(">I", *_U32), _int_unpacker(">I"),
           description="unsigned 32-bit integer, high word first"),
    Format("s32", 2, b"\x80\x00\x00\x00", _int_packer(">i", *_S32), _int_unpacker(">i"), signed=True,
           description="signed 32-bit integer, high word first"),
    Format("u32-M10K", 2, b"\xff\xff\xff\xff", _pack_m10k(False), _unpack_m10k(False),
           description="unsigned modulo-10000: high word × 10000 + low word, each 0..9999"),
    Format("s32-M10K", 2, b"\x80\x00\x00\x00", _pack_m10k(True), _unpack_m10k(True), signed=True,
           description="signed modulo-10000: high word × 10000 + low word, both carrying the sign"),
    Format("float32", 2, b"\xff\xc0\x00\x00", _pack_float32, _unpack_float32, signed=True, integer=False,
           description="IEEE 754 single precision, high word first"),
    Format("s64", 4, b"\x80\x00\x00\x00\x00\x00\x00\x00", _int_packer(">q", *_S64), _int_unpacker(">q"),
           signed=True, description="signed 64-bit integer, highest word first"),
)}

# Bits (coils, discrete inputs) are not register formats but are named in the same mapping key.
BIT_FORMAT = "bit"


def string_format(words: int) -> Format:
    """ASCII text in ``words`` registers, two characters a register, padded with NUL; all NUL when absent."""

    def pack(value: Any) -> bytes:
        raw = str(value).encode("ascii", "replace")[: 2 * words]
        return raw.ljust(2 * words, b"\0")

    def unpack(data: bytes) -> str:
        return data.rstrip(b"\0").decode("ascii", "replace")

    return Format(f"string{words}", words, b"\0" * (2 * words), pack, unpack, integer=False,
                  description=f"ASCII text, {2 * words} characters, NUL padded")


def get_format(name: str, length: int | None = None) -> Format:
    """The format named in a point's ``modbus`` mapping (``string`` needs ``length`` in registers)."""
    if name == "string":
        if not length or not 1 <= length <= 125:
            raise ValueError("format 'string' needs length = 1..125 registers")
        return string_format(length)
    try:
        return FORMATS[name]
    except KeyError:
        allowed = ", ".join([*FORMATS, "string", BIT_FORMAT])
        raise ValueError(f"format {name!r} is not known; allowed {allowed}") from None
