"""DNP3 application layer octets (IEEE 1815-2012 clauses 4 and A): function codes, internal indications, the
object headers of a request, and the wire form of each object variation the outstation sends.

Requests are parsed strictly: an unknown qualifier, a range that runs past the fragment or a count the request
cannot hold ends the parse with ``ParseError`` (answered with IIN2.2), never with an exception of Python's.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

# Application control octet
AC_FIR, AC_FIN, AC_CON, AC_UNS = 0x80, 0x40, 0x20, 0x10

# Function codes
CONFIRM, READ, WRITE, SELECT, OPERATE, DIRECT_OPERATE, DIRECT_OPERATE_NR = 0, 1, 2, 3, 4, 5, 6
IMMED_FREEZE, IMMED_FREEZE_NR, FREEZE_CLEAR, FREEZE_CLEAR_NR = 7, 8, 9, 10
COLD_RESTART, WARM_RESTART = 13, 14
ENABLE_UNSOLICITED, DISABLE_UNSOLICITED = 20, 21
DELAY_MEASURE, RECORD_CURRENT_TIME = 23, 24
RESPONSE, UNSOLICITED_RESPONSE = 129, 130

# Internal indications: (octet, bit) as one 16-bit value, IIN1 in the low octet
IIN_BROADCAST = 0x0001
IIN_CLASS1 = 0x0002
IIN_CLASS2 = 0x0004
IIN_CLASS3 = 0x0008
IIN_NEED_TIME = 0x0010
IIN_LOCAL_CONTROL = 0x0020
IIN_DEVICE_TROUBLE = 0x0040
IIN_RESTART = 0x0080
IIN_NO_FUNC = 0x0100
IIN_OBJECT_UNKNOWN = 0x0200
IIN_PARAMETER_ERROR = 0x0400
IIN_EVENT_OVERFLOW = 0x0800
IIN_ALREADY_EXECUTING = 0x1000
IIN_CONFIG_CORRUPT = 0x2000
CLASS_IIN = {1: IIN_CLASS1, 2: IIN_CLASS2, 3: IIN_CLASS3}

# Point flags
ONLINE, RESTART, COMM_LOST, OVER_RANGE, ROLLOVER = 0x01, 0x02, 0x04, 0x20, 0x20
STATE = 0x80                                   # binary input and output state in the flags octet

# Control relay output block (group 12 variation 1)
OP_NUL, OP_PULSE_ON, OP_PULSE_OFF, OP_LATCH_ON, OP_LATCH_OFF = 0, 1, 2, 3, 4
CROB_RUNS = (OP_PULSE_ON, OP_LATCH_ON)          # operation types that run a command (trip/close code NUL or CLOSE)
ST_SUCCESS, ST_TIMEOUT, ST_NO_SELECT, ST_FORMAT_ERROR, ST_NOT_SUPPORTED = 0, 1, 2, 3, 4
ST_HARDWARE_ERROR, ST_TOO_MANY_OBJS, ST_NOT_AUTHORIZED = 6, 8, 9
CROB_SIZE = 11

# Qualifier codes
Q_START_STOP_8, Q_START_STOP_16, Q_ALL, Q_COUNT_8, Q_COUNT_16, Q_INDEX_8, Q_INDEX_16 = 0x00, 0x01, 0x06, 0x07, \
    0x08, 0x17, 0x28

# Object sizes of the request objects the outstation accepts with data
REQUEST_SIZES: dict[tuple[int, int], int] = {(12, 1): CROB_SIZE, (50, 1): 6, (50, 3): 6}
MAX_HEADERS = 64                               # object headers one request may hold


class ParseError(ValueError):
    """The request does not parse: answered with IIN2.2 (parameter error)."""


@dataclass(frozen=True)
class Header:
    group: int
    variation: int
    qualifier: int
    start: int | None = None                   # start-stop range
    stop: int | None = None
    count: int | None = None                   # count qualifiers, and the number of indexed objects
    objects: tuple[tuple[int, bytes], ...] = ()  # (index, octets) of the objects the header carries

    @property
    def all(self) -> bool:
        return self.qualifier == Q_ALL


def parse_headers(data: bytes, write_like: bool) -> list[Header]:
    """The object headers of a request body. ``write_like``: the request carries object data (WRITE, SELECT,
    OPERATE, DIRECT OPERATE); otherwise headers have none (READ, freeze, class assignments)."""
    out: list[Header] = []
    pos = 0
    while pos < len(data):
        if len(out) >= MAX_HEADERS:
            raise ParseError(f"more than {MAX_HEADERS} object headers")
        if pos + 3 > len(data):
            raise ParseError("object header cut short")
        group, variation, qualifier = data[pos], data[pos + 1], data[pos + 2]
        pos += 3
        size = 0
        if write_like:
            size = -1 if (group, variation) == (80, 1) else REQUEST_SIZES.get((group, variation), 0)
            if size == 0:
                raise ParseError(f"g{group}v{variation} cannot be written here")
        if qualifier == Q_ALL:
            header = Header(group, variation, qualifier)
        elif qualifier in (Q_START_STOP_8, Q_START_STOP_16):
            header, pos = _start_stop(data, pos, group, variation, qualifier, size)
        elif qualifier in (Q_COUNT_8, Q_COUNT_16, Q_INDEX_8, Q_INDEX_16):
            header, pos = _counted(data, pos, group, variation, qualifier, size)
        else:
            raise ParseError(f"qualifier 0x{qualifier:02X} not supported")
        out.append(header)
    return out


def _take(data: bytes, pos: int, n: int, what: str) -> bytes:
    if n < 0 or pos + n > len(data):
        raise ParseError(f"{what} cut short")
    return data[pos:pos + n]


def _start_stop(data: bytes, pos: int, group: int, variation: int, qualifier: int,
                size: int) -> tuple[Header, int]:
    width = 1 if qualifier == Q_START_STOP_8 else 2
    raw = _take(data, pos, 2 * width, "range")
    start, stop = struct.unpack("<BB" if width == 1 else "<HH", raw)
    pos += 2 * width
    if stop < start:
        raise ParseError("range stop before start")
    count = stop - start + 1
    objects: tuple[tuple[int, bytes], ...] = ()
    if size == -1:                                   # packed bits
        bits = _take(data, pos, (count + 7) // 8, "packed bits")
        pos += len(bits)
        objects = tuple((start + k, bytes(((bits[k // 8] >> (k % 8)) & 1,))) for k in range(count))
    elif size > 0:
        raw = _take(data, pos, size * count, "objects")
        pos += len(raw)
        objects = tuple((start + k, raw[k * size:(k + 1) * size]) for k in range(count))
    return Header(group, variation, qualifier, start, stop, count, objects), pos


def _counted(data: bytes, pos: int, group: int, variation: int, qualifier: int, size: int) -> tuple[Header, int]:
    width = 1 if qualifier in (Q_COUNT_8, Q_INDEX_8) else 2
    count = int.from_bytes(_take(data, pos, width, "count"), "little")
    pos += width
    if count == 0:
        raise ParseError("count of zero")
    if qualifier in (Q_COUNT_8, Q_COUNT_16):
        objects: tuple[tuple[int, bytes], ...] = ()
        if size:
            raw = _take(data, pos, size * count, "objects")
            pos += len(raw)
            objects = tuple((k, raw[k * size:(k + 1) * size]) for k in range(count))
        return Header(group, variation, qualifier, count=count, objects=objects), pos
    step = width + max(size, 0)
    raw = _take(data, pos, step * count, "indexed objects")
    pos += len(raw)
    items = tuple((int.from_bytes(raw[k * step:k * step + width], "little"), raw[k * step + width:(k + 1) * step])
                  for k in range(count))
    return Header(group, variation, qualifier, count=count, objects=items), pos


# ---------------------------------------------------------------------------------------------- encoders

def time48(ms: int) -> bytes:
    return struct.pack("<Q", ms & 0xFFFFFFFFFFFF)[:6]


def read_time48(data: bytes) -> int:
    return int.from_bytes(data[:6], "little")


I32 = (-2**31, 2**31 - 1)
I16 = (-2**15, 2**15 - 1)


def _clamp(value: float, bounds: tuple[int, int]) -> tuple[int, bool]:
    lo, hi = bounds
    if value < lo:
        return lo, True
    if value > hi:
        return hi, True
    return int(round(value)), False


def analog(variation: int, value: float | None, flags: int, ms: int = 0) -> bytes:
    """Group 30 (static, variations 1-6) or group 32 (event, 1-8) octets; ``value`` None is offline."""
    if value is None:
        flags &= ~ONLINE
        value = 0.0
    if variation in (5, 7):
        body = struct.pack("<Bf", flags, value) if abs(value) < 3.4e38 else struct.pack("<Bf", flags | OVER_RANGE,
                                                                                           3.4e38 if value > 0 else -3.4e38)
        return body + (time48(ms) if variation == 7 else b"")
    if variation in (6, 8):
        return struct.pack("<Bd", flags, value) + (time48(ms) if variation == 8 else b"")
    bounds = I32 if variation in (1, 3) else I16
    raw, over = _clamp(value, bounds)
    flags |= OVER_RANGE if over else 0
    fmt = "<i" if bounds is I32 else "<h"
    return struct.pack("<B", flags) + struct.pack(fmt, raw)


def analog_static(variation: int, value: float | None, flags: int) -> bytes:
    """Group 30: variations 3 and 4 drop the flags octet."""
    body = analog({3: 1, 4: 2}.get(variation, variation), value, flags)
    return body[1:] if variation in (3, 4) else body


def analog_event(variation: int, value: float | None, flags: int, ms: int) -> bytes:
    """Group 32: 1/2 (32/16-bit), 3/4 (with time), 5/6 (float/double), 7/8 (with time)."""
    if variation in (3, 4):
        return analog(variation - 2, value, flags) + time48(ms)
    return analog(variation, value, flags, ms)


def counter(group: int, variation: int, value: int, flags: int, ms: int = 0) -> bytes:
    """Groups 20 (1, 2, 5, 6), 21 (1, 2, 5, 6, 9, 10), 22 and 23 (1, 2, 5, 6)."""
    wide = variation in (1, 5, 9)
    raw = value & (0xFFFFFFFF if wide else 0xFFFF)
    number = struct.pack("<I" if wide else "<H", raw)
    if group == 20:
        return number if variation in (5, 6) else bytes((flags,)) + number
    if group == 21 and variation in (9, 10):
        return number
    timed = variation in (5, 6)
    return bytes((flags,)) + number + (time48(ms) if timed else b"")


def binary_flags(state: bool | None) -> int:
    if state is None:
        return 0
    return ONLINE | (STATE if state else 0)


def packed(states: list[bool]) -> bytes:
    out = bytearray((len(states) + 7) // 8)
    for k, s in enumerate(states):
        if s:
            out[k // 8] |= 1 << (k % 8)
    return bytes(out)


# Sizes (octets) of each object the outstation sends, by (group, variation)
SIZES: dict[tuple[int, int], int] = {
    (1, 2): 1, (2, 1): 1, (2, 2): 7, (10, 2): 1,
    (20, 1): 5, (20, 2): 3, (20, 5): 4, (20, 6): 2,
    (21, 1): 5, (21, 2): 3, (21, 5): 11, (21, 6): 9, (21, 9): 4, (21, 10): 2,
    (22, 1): 5, (22, 2): 3, (22, 5): 11, (22, 6): 9,
    (23, 1): 5, (23, 2): 3, (23, 5): 11, (23, 6): 9,
    (30, 1): 5, (30, 2): 3, (30, 3): 4, (30, 4): 2, (30, 5): 5, (30, 6): 9,
    (32, 1): 5, (32, 2): 3, (32, 3): 11, (32, 4): 9, (32, 5): 5, (32, 6): 9, (32, 7): 11, (32, 8): 15,
}
STATIC_VARIATIONS = {1: (1, 2), 10: (2,), 20: (1, 2, 5, 6), 21: (1, 2, 5, 6, 9, 10), 30: (1, 2, 3, 4, 5, 6)}
EVENT_VARIATIONS = {2: (1, 2), 22: (1, 2, 5, 6), 23: (1, 2, 5, 6), 32: (1, 2, 3, 4, 5, 6, 7, 8)}
EVENT_GROUP = {1: 2, 20: 22, 21: 23, 30: 32}    # static group -> its event group
