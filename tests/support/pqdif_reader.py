"""An independent PQDIF (IEEE 1159.3) reader for the tests, written from the standard's tables and sharing no code
with the meter's writer (firmware/recorder/pqdif): Annex A's record header and element layout, and the GUIDs
and codes of the logical-format tables, typed here again from the standard.

``read(path)`` checks every record (signature, header size, Adler-32 of the body, links inside the body and the
file) and answers the records as ``Record(tag_name, body)``, a body being a list of ``(tag_name, value)`` with
collections as nested lists, vectors as lists (CHAR1 as str) and timestamps as seconds since 1970.
"""
from __future__ import annotations

import datetime
import struct
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# IEEE 1159.3 Annex A
SIGNATURE = "4a111440-e49f-11cf-9900-505144494600"
# physical types: code -> (struct format, bytes)
TYPES = {1: ("?", 1), 2: ("<h", 2), 3: ("<i", 4), 10: ("c", 1), 11: ("<H", 2), 20: ("<b", 1), 21: ("<h", 2),
         22: ("<i", 4), 30: ("<B", 1), 31: ("<H", 2), 32: ("<I", 4), 40: ("<f", 4), 41: ("<d", 8),
         42: ("<ff", 8), 43: ("<dd", 16), 50: ("<Id", 12), 60: (None, 16)}
EXCEL_DAY_OF_1970 = 25569                 # the standard's day count of 1970-01-01 in TIMESTAMPPQDIF

# the logical tables: tag GUID -> name
TAGS = {
    "89738606-f1c3-11cf-9d89-0080c72e70a3": "Container",
    "89738619-f1c3-11cf-9d89-0080c72e70a3": "RecDataSource",
    "b48d858c-f5f5-11cf-9d89-0080c72e70a3": "RecMonitorSettings",
    "8973861a-f1c3-11cf-9d89-0080c72e70a3": "RecObservation",
    "89738607-f1c3-11cf-9d89-0080c72e70a3": "VersionInfo",
    "89738608-f1c3-11cf-9d89-0080c72e70a3": "FileName",
    "89738609-f1c3-11cf-9d89-0080c72e70a3": "Creation",
    "89738623-f1c3-11cf-9d89-0080c72e70a3": "Application",
    "8973861b-f1c3-11cf-9d89-0080c72e70a3": "CompressionStyleID",
    "8973861c-f1c3-11cf-9d89-0080c72e70a3": "CompressionAlgorithmID",
    "b48d8581-f5f5-11cf-9d89-0080c72e70a3": "DataSourceTypeID",
    "b48d8582-f5f5-11cf-9d89-0080c72e70a3": "VendorID",
    "b48d8585-f5f5-11cf-9d89-0080c72e70a3": "SerialNumberDS",
    "b48d8587-f5f5-11cf-9d89-0080c72e70a3": "NameDS",
    "b48d858d-f5f5-11cf-9d89-0080c72e70a3": "ChannelDefns",
    "b48d858e-f5f5-11cf-9d89-0080c72e70a3": "OneChannelDefn",
    "b48d8590-f5f5-11cf-9d89-0080c72e70a3": "ChannelName",
    "b48d8591-f5f5-11cf-9d89-0080c72e70a3": "PhaseID",
    "b48d8592-f5f5-11cf-9d89-0080c72e70a3": "QuantityTypeID",
    "c690e872-f755-11cf-9d89-0080c72e70a3": "QuantityMeasuredID",
    "b48d8598-f5f5-11cf-9d89-0080c72e70a3": "SeriesDefns",
    "b48d859a-f5f5-11cf-9d89-0080c72e70a3": "OneSeriesDefn",
    "b48d859c-f5f5-11cf-9d89-0080c72e70a3": "ValueTypeID",
    "b48d859b-f5f5-11cf-9d89-0080c72e70a3": "QuantityUnitsID",
    "3d786f9e-f76e-11cf-9d89-0080c72e70a3": "QuantityCharacteristicID",
    "b48d85a1-f5f5-11cf-9d89-0080c72e70a3": "StorageMethodID",
    "0fa118c8-cb4a-11d2-b30b-fe25cb9a1760": "SeriesNominalQuantity",
    "3d786f8a-f76e-11cf-9d89-0080c72e70a3": "ObservationName",
    "3d786f8b-f76e-11cf-9d89-0080c72e70a3": "TimeCreate",
    "3d786f8c-f76e-11cf-9d89-0080c72e70a3": "TimeStart",
    "3d786f8d-f76e-11cf-9d89-0080c72e70a3": "TriggerMethodID",
    "3d786f8e-f76e-11cf-9d89-0080c72e70a3": "TimeTriggered",
    "b48d8597-f5f5-11cf-9d89-0080c72e70a3": "DisturbanceCategoryID",
    "3d786f91-f76e-11cf-9d89-0080c72e70a3": "ChannelInstances",
    "3d786f92-f76e-11cf-9d89-0080c72e70a3": "OneChannelInst",
    "b48d858f-f5f5-11cf-9d89-0080c72e70a3": "ChannelDefnIdx",
    "2747d444-2bd0-11d2-ae42-0060083a2628": "CharactDuration",
    "2747d443-2bd0-11d2-ae42-0060083a2628": "CharactMagnitude",
    "3d786f93-f76e-11cf-9d89-0080c72e70a3": "SeriesInstances",
    "3d786f94-f76e-11cf-9d89-0080c72e70a3": "OneSeriesInstance",
    "3d786f95-f76e-11cf-9d89-0080c72e70a3": "SeriesBaseQuantity",
    "3d786f96-f76e-11cf-9d89-0080c72e70a3": "SeriesScale",
    "3d786f97-f76e-11cf-9d89-0080c72e70a3": "SeriesOffset",
    "3d786f99-f76e-11cf-9d89-0080c72e70a3": "SeriesValues",
}
# identifier tables (values of the ID tags above)
IDS = {
    "67f6af80-f753-11cf-9d89-0080c72e70a3": "ID_QT_WAVEFORM",
    "67f6af82-f753-11cf-9d89-0080c72e70a3": "ID_QT_VALUELOG",
    "67f6af8b-f753-11cf-9d89-0080c72e70a3": "ID_QT_MAGDUR",
    "67f6af97-f753-11cf-9d89-0080c72e70a3": "ID_SERIES_VALUE_TYPE_VAL",
    "c690e862-f755-11cf-9d89-0080c72e70a3": "ID_SERIES_VALUE_TYPE_TIME",
    "67f6af9a-f753-11cf-9d89-0080c72e70a3": "ID_SERIES_VALUE_TYPE_AVG",
    "c690e863-f755-11cf-9d89-0080c72e70a3": "ID_SERIES_VALUE_TYPE_DURATION",
    "e6b51730-f747-11cf-9d89-0080c72e70a3": "ID_DS_TYPE_MEASURE",
    "a6b31add-b451-11d1-ae17-0060083a2628": "ID_QC_INSTANTANEOUS",
    "a6b31ae5-b451-11d1-ae17-0060083a2628": "ID_QC_RMS",
    "dd56ef6a-7edd-11d2-b30a-00609789d193": "ID_DISTURB_1159_SHORTDUR_INSTANT_SAG",
    "dd56ef6e-7edd-11d2-b30a-00609789d193": "ID_DISTURB_1159_SHORTDUR_MOMENT_SAG",
    "dd56ef6b-7edd-11d2-b30a-00609789d193": "ID_DISTURB_1159_SHORTDUR_INSTANT_SWELL",
    "dd56ef6d-7edd-11d2-b30a-00609789d193": "ID_DISTURB_1159_SHORTDUR_MOMENT_INTERRUPT",
}
UNITS = {0: "none", 1: "timestamp", 2: "s", 6: "V", 7: "A", 15: "Hz", 19: "%"}
PHASES = {0: "none", 1: "AN", 2: "BN", 3: "CN", 4: "NG", 5: "AB", 6: "BC", 7: "CA"}
QUANTITIES = {0: "none", 1: "voltage", 2: "current"}


class PqdifError(AssertionError):
    pass


@dataclass
class Record:
    tag: str
    body: list[tuple[str, Any]]


def _guid(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=raw))


def _value(code: int, raw: bytes, at: int, count: int) -> list[Any]:
    fmt, size = TYPES[code]
    out: list[Any] = []
    for k in range(count):
        chunk = raw[at + k * size: at + (k + 1) * size]
        if len(chunk) != size:
            raise PqdifError(f"value of type {code} runs past the record body")
        if code == 60:
            out.append(IDS.get(_guid(chunk), _guid(chunk)))
        elif code == 50:
            days, secs = struct.unpack(fmt, chunk)
            out.append((days - EXCEL_DAY_OF_1970) * 86400.0 + secs)
        elif code == 10:
            out.append(chunk.decode("ascii"))
        else:
            v = struct.unpack(fmt, chunk)
            out.append(v[0] if len(v) == 1 else complex(*v))
    return out


def _collection(body: bytes, at: int, depth: int = 0) -> list[tuple[str, Any]]:
    if depth > 32:
        raise PqdifError("collections nested deeper than 32")
    (count,) = struct.unpack_from("<i", body, at)
    if count < 0 or at + 4 + 28 * count > len(body):
        raise PqdifError(f"collection of {count} elements runs past the record body")
    items: list[tuple[str, Any]] = []
    for k in range(count):
        e = at + 4 + 28 * k
        tag = _guid(body[e:e + 16])
        etype, ptype, embedded = body[e + 16], body[e + 17], body[e + 18]
        name = TAGS.get(tag, tag)
        if etype == 2 and embedded:
            value: Any = _value(ptype, body, e + 20, 1)[0]
        else:
            link, size = struct.unpack_from("<ii", body, e + 20)
            if not (link >= 0 and link + size <= len(body)):
                raise PqdifError(f"{name}: link {link} + {size} outside the record body ({len(body)})")
            if etype == 1:
                value = _collection(body, link, depth + 1)
            elif etype == 2:
                value = _value(ptype, body, link, 1)[0]
            elif etype == 3:
                (n,) = struct.unpack_from("<i", body, link)
                value = _value(ptype, body, link + 4, n)
                if ptype == 10:
                    value = "".join(value).rstrip("\0")
            else:
                raise PqdifError(f"{name}: element type {etype} is none of collection, scalar, vector")
        items.append((name, value))
    return items


def read(path: str | Path) -> list[Record]:
    data = Path(path).read_bytes()
    records: list[Record] = []
    at, seen = 0, set()
    while True:
        if at in seen or at + 64 > len(data):
            raise PqdifError(f"record link {at} loops or lies outside the file ({len(data)} bytes)")
        seen.add(at)
        if _guid(data[at:at + 16]) != SIGNATURE:
            raise PqdifError(f"record at {at}: not the PQDIF signature")
        tag = _guid(data[at + 16:at + 32])
        header_size, body_size, next_at, checksum = struct.unpack_from("<iiiI", data, at + 32)
        body = data[at + header_size:at + header_size + body_size]
        if header_size != 64 or len(body) != body_size:
            raise PqdifError(f"record at {at}: header {header_size} bytes, body {body_size} of {len(body)} present")
        if checksum != zlib.adler32(body):
            raise PqdifError(f"record at {at}: Adler-32 {checksum:#x} is not the body's {zlib.adler32(body):#x}")
        records.append(Record(TAGS.get(tag, tag), _collection(body, 0)))
        if next_at == 0:
            return records
        at = next_at


def get(items: list[tuple[str, Any]], name: str, default: Any = KeyError) -> Any:
    for k, v in items:
        if k == name:
            return v
    if default is KeyError:
        raise PqdifError(f"{name} missing (have {[k for k, _ in items]})")
    return default


def utc(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def channels(records: list[Record]) -> list[dict[str, Any]]:
    """The data source's channel definitions: name, phase, quantity, type, and (value type, unit) per series."""
    (ds,) = [r for r in records if r.tag == "RecDataSource"]
    out = []
    for _, c in get(ds.body, "ChannelDefns"):
        series = [(get(s, "ValueTypeID"), UNITS.get(get(s, "QuantityUnitsID"), "?")) for _, s in get(c, "SeriesDefns")]
        out.append({"name": get(c, "ChannelName"), "phase": PHASES.get(get(c, "PhaseID"), "?"),
                    "quantity": QUANTITIES.get(get(c, "QuantityMeasuredID"), "?"), "type": get(c, "QuantityTypeID"),
                    "series": series})
    return out


def observations(records: list[Record]) -> list[dict[str, Any]]:
    """Each observation: name, start, trigger, category, and per channel instance its definition index and the
    values of each series (scaled as tagSeriesScale / tagSeriesOffset say, when present)."""
    out = []
    for r in records:
        if r.tag != "RecObservation":
            continue
        insts = []
        for _, inst in get(r.body, "ChannelInstances"):
            series = []
            for _, s in get(inst, "SeriesInstances"):
                values = get(s, "SeriesValues")
                scale, offset = get(s, "SeriesScale", 1.0), get(s, "SeriesOffset", 0.0)
                series.append([v * scale + offset for v in values])
            insts.append({"channel": get(inst, "ChannelDefnIdx"), "series": series})
        out.append({"name": get(r.body, "ObservationName"), "start": get(r.body, "TimeStart"),
                    "triggered": get(r.body, "TimeTriggered", None), "trigger": get(r.body, "TriggerMethodID"),
                    "category": get(r.body, "DisturbanceCategoryID", None),
                    "magnitude": get(r.body, "CharactMagnitude", None),
                    "duration": get(r.body, "CharactDuration", None), "channels": insts})
    return out
