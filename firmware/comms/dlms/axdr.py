"""A-XDR data (IEC 62056-6-2 "Data"): the typed values COSEM attributes carry, encoded and decoded.

The decoder takes hostile input: every length is checked against the bytes present, nesting is bounded, and
anything malformed raises ``DecodeError`` (never another exception).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

NULL, ARRAY, STRUCTURE, BOOLEAN, BIT_STRING = 0, 1, 2, 3, 4
DOUBLE_LONG, DOUBLE_LONG_UNSIGNED, OCTET_STRING, VISIBLE_STRING, UTF8_STRING = 5, 6, 9, 10, 12
INTEGER, LONG, UNSIGNED, LONG_UNSIGNED, LONG64, LONG64_UNSIGNED, ENUM = 15, 16, 17, 18, 20, 21, 22
FLOAT32, FLOAT64, DATE_TIME = 23, 24, 25

MAX_DEPTH = 8
MAX_ITEMS = 4096

_FIXED = {BOOLEAN: ">B", DOUBLE_LONG: ">i", DOUBLE_LONG_UNSIGNED: ">I", INTEGER: ">b", LONG: ">h",
          UNSIGNED: ">B", LONG_UNSIGNED: ">H", LONG64: ">q", LONG64_UNSIGNED: ">Q", ENUM: ">B", FLOAT32: ">f",
          FLOAT64: ">d"}
NOT_SPECIFIED_DEVIATION = -0x8000


class DecodeError(ValueError):
    """Malformed A-XDR or APDU bytes."""


@dataclass(frozen=True)
class Typed:
    """A value with its A-XDR type (``Typed(LONG_UNSIGNED, 5)``); arrays and structures hold lists of Typed."""
    tag: int
    value: Any


def length(n: int) -> bytes:
    """A-XDR / BER length: one byte below 128, else 0x8N and N bytes."""
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def encode(item: Typed) -> bytes:
    tag, value = item.tag, item.value
    if tag == NULL:
        return b"\x00"
    if tag in (ARRAY, STRUCTURE):
        return bytes([tag]) + length(len(value)) + b"".join(encode(v) for v in value)
    if tag in (OCTET_STRING, VISIBLE_STRING, UTF8_STRING):
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return bytes([tag]) + length(len(raw)) + raw
    if tag == BIT_STRING:
        bits, raw = value
        return bytes([tag]) + length(bits) + bytes(raw)
    if tag == DATE_TIME:
        return bytes([tag]) + date_time(value)
    return bytes([tag]) + struct.pack(_FIXED[tag], value)


def date_time(when: datetime | None) -> bytes:
    """The 12-byte COSEM date-time of an aware datetime (UTC, deviation 0), or every field 'not specified'."""
    if when is None:
        return b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x80\x00\xff"
    when = when.astimezone(timezone.utc)
    return struct.pack(">HBBBBBBBhB", when.year, when.month, when.day, when.isoweekday(), when.hour,
                       when.minute, when.second, when.microsecond // 10000, 0, 0)


def parse_date_time(raw: bytes) -> datetime:
    """An aware datetime of a COSEM date-time; DecodeError if a field is not specified or out of range."""
    if len(raw) != 12:
        raise DecodeError("date-time is 12 bytes")
    year, month, day, _dow, hour, minute, second, hundredths, deviation, _status = struct.unpack(">HBBBBBBBhB",
                                                                                               raw)
    if 0xFF in (month, day, hour, minute, second) or year == 0xFFFF:
        raise DecodeError("date-time with fields not specified")
    try:
        when = datetime(year, month, day, hour, minute, second,
                        0 if hundredths == 0xFF else min(hundredths, 99) * 10000, tzinfo=timezone.utc)
    except ValueError as exc:
        raise DecodeError(f"date-time: {exc}") from None
    if deviation != NOT_SPECIFIED_DEVIATION:
        if not -840 <= deviation <= 840:
            raise DecodeError("date-time deviation out of range")
        # deviation: minutes from local time to UTC (IEC 62056-6-2: local = UTC - deviation)
        when += timedelta(minutes=deviation)
    return when


class Reader:
    """Bounded reading of a byte string."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise DecodeError("truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def length(self) -> int:
        first = self.byte()
        if first < 0x80:
            return first
        n = first & 0x7F
        if not 1 <= n <= 3:
            raise DecodeError("length of length")
        value = int.from_bytes(self.take(n), "big")
        if value > len(self.data) - self.pos:
            raise DecodeError("length past the end")
        return value

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)

    def done(self) -> bool:
        return self.pos >= len(self.data)


def decode(reader: Reader, depth: int = 0) -> Typed:
    if depth > MAX_DEPTH:
        raise DecodeError("nested too deep")
    tag = reader.byte()
    if tag == NULL:
        return Typed(NULL, None)
    if tag in (ARRAY, STRUCTURE):
        n = reader.length()
        if n > MAX_ITEMS:
            raise DecodeError("too many elements")
        return Typed(tag, [decode(reader, depth + 1) for _ in range(n)])
    if tag in (OCTET_STRING, VISIBLE_STRING, UTF8_STRING):
        raw = reader.take(reader.length())
        if tag == OCTET_STRING:
            return Typed(tag, raw)
        try:
            return Typed(tag, raw.decode("utf-8" if tag == UTF8_STRING else "ascii"))
        except UnicodeDecodeError:
            raise DecodeError("string not decodable") from None
    if tag == BIT_STRING:
        bits = reader.length()
        return Typed(tag, (bits, reader.take((bits + 7) // 8)))
    if tag == DATE_TIME:
        return Typed(tag, reader.take(12))
    fmt = _FIXED.get(tag)
    if fmt is None:
        raise DecodeError(f"data type {tag} not supported")
    return Typed(tag, struct.unpack(fmt, reader.take(struct.calcsize(fmt)))[0])


def decode_all(data: bytes) -> Typed:
    reader = Reader(data)
    out = decode(reader)
    if not reader.done():
        raise DecodeError("bytes after the data")
    return out


def as_int(item: Typed) -> int:
    if item.tag in (INTEGER, LONG, UNSIGNED, LONG_UNSIGNED, DOUBLE_LONG, DOUBLE_LONG_UNSIGNED, LONG64,
                    LONG64_UNSIGNED, ENUM):
        return int(item.value)
    raise DecodeError(f"an integer was expected, not type {item.tag}")


def as_datetime(item: Typed) -> datetime:
    if item.tag == DATE_TIME or (item.tag == OCTET_STRING and len(item.value) == 12):
        return parse_date_time(bytes(item.value))
    raise DecodeError("a date-time was expected")
