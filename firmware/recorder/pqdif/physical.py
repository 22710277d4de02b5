"""PQDIF physical format (IEEE 1159.3 Annex A): records of a 64-byte header and a body that is one collection.

A collection is an INT4 count and that many 28-byte element entries (tag GUID, element type, physical
type, embedded flag, a reserved byte, then either the value itself, for a scalar of up to 8 bytes, or the
position of the element's body in the record body and its size). The bodies follow the entries, each padded to
4 bytes. A vector's body is an INT4 count and its values. Everything is little-endian; the header holds the body's
size, the file position of the next record (0 for the last) and the body's Adler-32 checksum. No compression.
"""
from __future__ import annotations

import math
import struct
import uuid
import zlib
from dataclasses import dataclass
from typing import Any, Sequence, Union

import numpy as np

from firmware.recorder.pqdif import ids


@dataclass(frozen=True)
class Scalar:
    tag: uuid.UUID
    ptype: int
    value: Any


@dataclass(frozen=True)
class Vector:
    tag: uuid.UUID
    ptype: int
    values: Any            # str (CHAR1), a sequence or an array


@dataclass(frozen=True)
class Collection:
    tag: uuid.UUID
    items: Sequence["Element"]


Element = Union[Scalar, Vector, Collection]

_NUMERIC = {ids.BOOL4: "<i4", ids.INT4: "<i4", ids.UINT4: "<u4", ids.REAL4: "<f4", ids.REAL8: "<f8"}


def timestamp(unix_s: float) -> bytes:
    """TIMESTAMPPQDIF of a time in seconds since 1970 (UTC): UINT4 days, REAL8 seconds of the day."""
    days = math.floor(unix_s / 86400.0)
    return struct.pack("<Id", days + ids.TIMESTAMP_UNIX_DAY, unix_s - days * 86400.0)


def _values(ptype: int, value: Any, vector: bool) -> bytes:
    if ptype == ids.CHAR1:
        text = value.encode("ascii", "replace") + b"\0"         # a NUL-terminated string
        return struct.pack("<i", len(text)) + text if vector else text[:1]
    if ptype == ids.GUID:
        items = list(value) if vector else [value]
        body = b"".join(u.bytes_le for u in items)
    elif ptype == ids.TIMESTAMP:
        items = list(value) if vector else [value]
        body = b"".join(timestamp(float(t)) for t in items)
    else:
        arr = np.asarray(value if vector else [value], dtype=_NUMERIC[ptype])
        items, body = list(range(arr.size)), arr.tobytes()
    return (struct.pack("<i", len(items)) + body) if vector else body


def _body(el: Element, at: int) -> bytes:
    """The body of ``el`` placed at position ``at`` of the record body."""
    if isinstance(el, Collection):
        return _collection(el, at)
    if isinstance(el, Vector):
        return _values(el.ptype, el.values, True)
    return _values(el.ptype, el.value, False)


def _embedded(el: Element) -> bool:
    return isinstance(el, Scalar) and ids.PHYSICAL_SIZES[el.ptype] <= 8


def _collection(col: Collection, at: int) -> bytes:
    entries = [struct.pack("<i", len(col.items))]
    bodies: list[bytes] = []
    link = at + 4 + ids.ELEMENT_HEADER_SIZE * len(col.items)
    for el in col.items:
        kind = ids.COLLECTION if isinstance(el, Collection) else ids.VECTOR if isinstance(el, Vector) else ids.SCALAR
        ptype = 0 if isinstance(el, Collection) else el.ptype
        head = el.tag.bytes_le + struct.pack("<BBBB", kind, ptype, int(_embedded(el)), 0)
        if _embedded(el):
            entries.append(head + _body(el, 0).ljust(8, b"\0"))
            continue
        body = _body(el, link)
        padded = body.ljust((len(body) + 3) // 4 * 4, b"\0")
        entries.append(head + struct.pack("<ii", link, len(padded)))
        bodies.append(padded)
        link += len(padded)
    return b"".join(entries + bodies)


def record(tag: uuid.UUID, items: Sequence[Element], at: int, last: bool) -> bytes:
    """One record whose header starts at file position ``at``: header and body (the collection of ``items``)."""
    body = _collection(Collection(tag, items), 0)
    next_at = 0 if last else at + ids.RECORD_HEADER_SIZE + len(body)
    header = (ids.RECORD_SIGNATURE.bytes_le + tag.bytes_le
              + struct.pack("<iiiI", ids.RECORD_HEADER_SIZE, len(body), next_at, zlib.adler32(body)) + bytes(16))
    return header + body


def write_records(records: Sequence[tuple[uuid.UUID, Sequence[Element]]]) -> bytes:
    """A whole file: the records in order, each linked to the next."""
    out: list[bytes] = []
    at = 0
    for k, (tag, items) in enumerate(records):
        data = record(tag, items, at, k == len(records) - 1)
        out.append(data)
        at += len(data)
    return b"".join(out)


def text(tag: uuid.UUID, value: str) -> Vector:
    return Vector(tag, ids.CHAR1, value)


def uint(tag: uuid.UUID, value: int) -> Scalar:
    return Scalar(tag, ids.UINT4, int(value))


def real(tag: uuid.UUID, value: float) -> Scalar:
    return Scalar(tag, ids.REAL8, float(value))


def guid(tag: uuid.UUID, value: uuid.UUID) -> Scalar:
    return Scalar(tag, ids.GUID, value)


def when(tag: uuid.UUID, unix_s: float) -> Scalar:
    return Scalar(tag, ids.TIMESTAMP, float(unix_s))
