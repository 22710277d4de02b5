"""Profile generic (class 7) buffers: the load profile (1.0.99.1.0.255) and the event log (0.0.99.98.0.255),
read from the meter's own record stores, with selective access by range (of the clock column) and by entry."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from firmware.comms.dlms import axdr
from firmware.comms.dlms.axdr import Typed
from firmware.comms.dlms.objects import (
    CLOCK,
    CLOCK_LN,
    DATA,
    OTHER,
    READ_WRITE_DENIED,
    REGISTER,
    TYPE_UNMATCHED,
    UNAVAILABLE,
    AccessError,
    CosemObject,
    date_time_of,
    ln_bytes,
    scaled,
)

MAX_ROWS = 10000                 # rows one read returns at most (the block transfer carries them)
STATUS_LN = "0.0.96.10.1.255"    # the record's status flags (firmware.revenue.loadprofile FLAGS)
EVENT_SOURCE_LN = "0.128.99.98.1.255"   # manufacturer-specific columns of the event log
EVENT_TEXT_LN = "0.128.99.98.2.255"
SORT_FIFO = 1
BY_RANGE, BY_ENTRY = 1, 2


@dataclass(frozen=True)
class Column:
    class_id: int
    ln: str
    attribute: int

    def definition(self) -> Typed:
        return Typed(axdr.STRUCTURE, [Typed(axdr.LONG_UNSIGNED, self.class_id),
                                      Typed(axdr.OCTET_STRING, ln_bytes(self.ln)),
                                      Typed(axdr.INTEGER, self.attribute), Typed(axdr.LONG_UNSIGNED, 0)])


@dataclass
class Profile:
    """One profile: its columns, how a stored record becomes a row, and its store's reader."""
    obj: CosemObject
    columns: list[Column]
    row: Callable[[dict[str, Any]], list[Typed]]
    read: Callable[[float | None, float | None, int], list[dict[str, Any]]]
    period_s: int
    depth: int

    def attribute(self, attr: int, selector: int, params: Typed | None) -> Typed:
        if attr == 2:
            return self.buffer(selector, params)
        if attr == 3:
            return Typed(axdr.ARRAY, [c.definition() for c in self.columns])
        if attr == 4:
            return Typed(axdr.DOUBLE_LONG_UNSIGNED, self.period_s)
        if attr == 5:
            return Typed(axdr.ENUM, SORT_FIFO)
        if attr == 6:
            return self.columns[0].definition()
        if attr == 7:
            return Typed(axdr.DOUBLE_LONG_UNSIGNED, min(len(self.read(None, None, self.depth)), self.depth))
        if attr == 8:
            return Typed(axdr.DOUBLE_LONG_UNSIGNED, self.depth)
        raise AccessError(UNAVAILABLE)

    def buffer(self, selector: int, params: Typed | None) -> Typed:
        first_col, last_col = 0, len(self.columns)
        if selector == 0:
            records = self.read(None, None, MAX_ROWS)
        elif selector == BY_RANGE and params is not None:
            records, cols = self._range(params)
            if cols:
                return Typed(axdr.ARRAY, [Typed(axdr.STRUCTURE, [r[i] for i in cols])
                                          for r in (self.row(x) for x in records)])
        elif selector == BY_ENTRY and params is not None:
            records, first_col, last_col = self._entries(params)
        else:
            raise AccessError(OTHER, "selective access not supported")
        return Typed(axdr.ARRAY, [Typed(axdr.STRUCTURE, self.row(r)[first_col:last_col]) for r in records])

    def _range(self, params: Typed) -> tuple[list[dict[str, Any]], list[int]]:
        try:
            restricting, start, end, selected = params.value
            cls, ln, attr = (axdr.as_int(restricting.value[0]), bytes(restricting.value[1].value),
                             axdr.as_int(restricting.value[2]))
            since, until = axdr.as_datetime(start), axdr.as_datetime(end)
        except (axdr.DecodeError, TypeError, ValueError, AttributeError, IndexError):
            raise AccessError(TYPE_UNMATCHED) from None
        if (cls, ln, attr) != (CLOCK, ln_bytes(CLOCK_LN), 2):
            raise AccessError(READ_WRITE_DENIED, "a range is of the clock column")
        cols: list[int] = []
        for item in selected.value if selected.tag == axdr.ARRAY else []:
            try:
                key = (axdr.as_int(item.value[0]), bytes(item.value[1].value), axdr.as_int(item.value[2]))
            except (axdr.DecodeError, TypeError, AttributeError, IndexError):
                raise AccessError(TYPE_UNMATCHED) from None
            match = [i for i, c in enumerate(self.columns) if (c.class_id, ln_bytes(c.ln), c.attribute) == key]
            if not match:
                raise AccessError(TYPE_UNMATCHED, "selected value is not a column")
            cols.append(match[0])
        return self.read(since.timestamp(), until.timestamp(), MAX_ROWS), cols

    def _entries(self, params: Typed) -> tuple[list[dict[str, Any]], int, int]:
        try:
            first, last, first_col, last_col = (axdr.as_int(v) for v in params.value)
        except (axdr.DecodeError, TypeError, ValueError):
            raise AccessError(TYPE_UNMATCHED) from None
        n = len(self.columns)
        if first < 1 or (last and last < first) or first_col < 1 and first_col != 0 or last_col > n \
                or (last_col and last_col < max(first_col, 1)):
            raise AccessError(TYPE_UNMATCHED, "entry descriptor out of range")
        upto = min(last, first + MAX_ROWS - 1) if last else first + MAX_ROWS - 1
        records = self.read(None, None, upto)[first - 1:upto]
        return records, max(first_col, 1) - 1, last_col or n


def load_profile(obj: CosemObject, channels: list[tuple[str, CosemObject]], read: Any, period_s: int,
                 depth: int) -> Profile:
    columns = [Column(CLOCK, CLOCK_LN, 2), Column(DATA, STATUS_LN, 2)] + \
              [Column(REGISTER, ch.ln, 2) for _, ch in channels]
    n = len(channels)

    def row(record: dict[str, Any]) -> list[Typed]:
        data = list(record.get("data") or [])[:n]
        data += [None] * (n - len(data))
        return [date_time_of(record.get("end_ts")), Typed(axdr.DOUBLE_LONG_UNSIGNED, int(record.get("status") or 0)
                                                           & 0xFFFFFFFF)] + [scaled(ch, v) for (_, ch), v in
                                                                             zip(channels, data)]

    return Profile(obj, columns, row, read, period_s, depth)


def event_log(obj: CosemObject, read: Any, depth: int) -> Profile:
    columns = [Column(CLOCK, CLOCK_LN, 2), Column(DATA, EVENT_SOURCE_LN, 2), Column(DATA, EVENT_TEXT_LN, 2)]

    def row(record: dict[str, Any]) -> list[Typed]:
        text = " ".join(str(record.get(k) or "") for k in ("cause", "effect")).strip()
        return [date_time_of(record.get("ts")), Typed(axdr.VISIBLE_STRING, _ascii(record.get("source"), 32)),
                Typed(axdr.VISIBLE_STRING, _ascii(text, 200))]

    return Profile(obj, columns, row, read, 0, depth)


def _ascii(value: Any, most: int) -> str:
    return str(value or "").encode("ascii", "replace").decode("ascii")[:most]
