"""The subset of ASN.1 BER (X.690) SNMP uses, for messages from anyone on the network.

Decoding is strict and bounded: one-byte tags only, definite lengths of at most four length bytes that fit in
what is left of the message, integers of at most nine bytes, object identifiers of at most ``MAX_OID_ARCS`` arcs
each below 2^32, sequences nested at most ``MAX_DEPTH`` deep. Anything else raises ``BerError``, which the agent
counts as snmpInASNParseErrs and drops. Encoding produces the definite, shortest forms.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Union

INTEGER, OCTET_STRING, NULL, OID, SEQUENCE = 0x02, 0x04, 0x05, 0x06, 0x30
IP_ADDRESS, COUNTER32, GAUGE32, TIMETICKS, OPAQUE, COUNTER64 = 0x40, 0x41, 0x42, 0x43, 0x44, 0x46
NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW = 0x80, 0x81, 0x82

MAX_OID_ARCS = 128
MAX_ARC = 0xFFFFFFFF
MAX_DEPTH = 8
OID_CACHE = 2048                # encoded and decoded OIDs kept: the MIB's own, a walk's, a manager's

Oid = tuple[int, ...]


class BerError(ValueError):
    """A message that is not valid BER of the shape SNMP expects."""


def oid(text: str) -> Oid:
    """``"1.3.6.1"`` -> ``(1, 3, 6, 1)``."""
    arcs = tuple(int(a) for a in text.strip(".").split("."))
    if len(arcs) < 2 or any(not 0 <= a <= MAX_ARC for a in arcs):
        raise ValueError(f"{text!r} is not an object identifier")
    return arcs


def oid_text(value: Oid) -> str:
    return ".".join(str(a) for a in value)


# --------------------------------------------------------------------------- encoding


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _length(len(body)) + body


def encode_int(value: int, tag: int = INTEGER) -> bytes:
    size = max(1, (value + (value < 0)).bit_length() // 8 + 1)
    return tlv(tag, value.to_bytes(size, "big", signed=True))


def encode_unsigned(value: int, tag: int) -> bytes:
    """Counter32, Gauge32, TimeTicks, Counter64: non-negative, encoded as a (positive) INTEGER body."""
    return encode_int(max(0, value), tag)


def encode_octets(value: bytes, tag: int = OCTET_STRING) -> bytes:
    return tlv(tag, value)


@lru_cache(maxsize=OID_CACHE)
def encode_oid(value: Oid) -> bytes:
    body = bytearray((40 * value[0] + value[1],)) if value[0] < 2 else bytearray()
    arcs = value[2:] if value[0] < 2 else (40 * value[0] + value[1], *value[2:])
    for arc in arcs:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(OID, bytes(body))


def sequence(*parts: bytes, tag: int = SEQUENCE) -> bytes:
    return tlv(tag, b"".join(parts))


NULL_VALUE = b"\x05\x00"

# --------------------------------------------------------------------------- decoding


class Reader:
    """Reads TLVs one after another from ``data[start:end]``."""

    __slots__ = ("data", "pos", "end", "depth")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None, depth: int = 0) -> None:
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end
        self.depth = depth

    def done(self) -> bool:
        return self.pos >= self.end

    def header(self) -> tuple[int, int, int]:
        """(tag, value start, value end) of the next TLV; the position moves past it."""
        data, pos, end = self.data, self.pos, self.end
        if pos + 2 > end:
            raise BerError("truncated header")
        tag = data[pos]
        if tag & 0x1F == 0x1F:
            raise BerError("multi-byte tags are not used by SNMP")
        first = data[pos + 1]
        pos += 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0:
                raise BerError("indefinite length")
            if count > 4 or pos + count > end:
                raise BerError("length too long")
            length = int.from_bytes(data[pos:pos + count], "big")
            pos += count
        if length > end - pos:
            raise BerError("length past the end")
        self.pos = pos + length
        return tag, pos, pos + length

    def expect(self, tag: int) -> tuple[int, int]:
        got, start, stop = self.header()
        if got != tag:
            raise BerError(f"tag 0x{got:02x} where 0x{tag:02x} was expected")
        return start, stop

    def enter(self, tag: int = SEQUENCE) -> "Reader":
        if self.depth >= MAX_DEPTH:
            raise BerError("nested too deep")
        start, stop = self.expect(tag)
        return Reader(self.data, start, stop, self.depth + 1)

    def integer(self, tag: int = INTEGER) -> int:
        start, stop = self.expect(tag)
        return decode_int(self.data[start:stop], signed=tag == INTEGER)

    def octets(self, tag: int = OCTET_STRING) -> bytes:
        start, stop = self.expect(tag)
        return self.data[start:stop]

    def oid(self) -> Oid:
        start, stop = self.expect(OID)
        return decode_oid(self.data[start:stop])

    def raw(self) -> tuple[int, bytes]:
        tag, start, stop = self.header()
        return tag, self.data[start:stop]


def decode_int(body: bytes, signed: bool = True) -> int:
    if not body or len(body) > 9:
        raise BerError("integer of bad size")
    return int.from_bytes(body, "big", signed=signed) if signed else int.from_bytes(body, "big")


@lru_cache(maxsize=OID_CACHE)
def decode_oid(body: bytes) -> Oid:
    if not body:
        raise BerError("empty object identifier")
    arcs: list[int] = []
    value = 0
    started = False
    for byte in body:
        if not started and byte == 0x80:
            raise BerError("object identifier arc with a leading zero")
        value = (value << 7) | (byte & 0x7F)
        started = True
        if not byte & 0x80:
            arcs.append(value)
            value, started = 0, False
            if len(arcs) > MAX_OID_ARCS:
                raise BerError("object identifier too long")
        elif value > MAX_ARC:
            raise BerError("object identifier arc too large")
    if started:
        raise BerError("object identifier ends inside an arc")
    first = arcs[0]
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    out = (*head, *arcs[1:])
    if any(a > MAX_ARC for a in out):
        raise BerError("object identifier arc too large")
    return out


Value = Union[int, bytes, Oid, None]
