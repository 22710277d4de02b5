"""The three S4100 trend logs: records on disk (SQLite, 5760 each, circular or stop-when-full) and the
ReadRange selection over them (ASHRAE 135 Clause 15.8).

A record's BACnet sequence number is its row id, which only grows; Record_Count is the rows kept.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ItemsView, Sequence, ValuesView

from firmware.storage.logstore import LogStore

SUBDIR = "bacnet"
DB = "trendlogs.db"
# Encoded size of one LogRecord with a real datum and status flags (DateTime 12 + datum 7 + flags 4 bytes)
# and of the ReadRange-ACK around the items, for how many records fit one unsegmented APDU.
RECORD_BYTES = 23
ACK_OVERHEAD_BYTES = 24


@dataclass(frozen=True)
class Record:
    sequence: int
    ts: float
    value: float


class TrendStore:
    """One log's records. Record_Count and Total_Record_Count, which the device shows every second, are kept
    here from what this store adds and clears (this process is the logs' only writer), not counted in SQLite
    each time."""

    def __init__(self, data_dir: str | Path, instance: int, depth: int, stop_when_full: bool) -> None:
        self.log = LogStore(Path(data_dir) / SUBDIR / DB, f"tl{instance}", {"value": "REAL"}, depth,
                            "stop" if stop_when_full else "circular")
        self._counts: tuple[int, int] | None = None    # (count, total) as last read from the store

    def set_stop_when_full(self, stop: bool) -> None:
        self.log.mode = "stop" if stop else "circular"

    def append(self, ts: float, value: float) -> int | None:
        # NaN is stored as NULL (SQLite has no NaN) and read back as NaN
        self._counts = None
        return self.log.append(ts, {"value": value if math.isfinite(value) else None})

    def _read_counts(self) -> tuple[int, int]:
        if self._counts is None:
            rows = self.log.sql(f"SELECT seq FROM sqlite_sequence WHERE name = '{self.log.table}'")
            self._counts = (self.log.count(), int(rows[0][0]) if rows else 0)
        return self._counts

    def count(self) -> int:
        return self._read_counts()[0]

    def total(self) -> int:
        """Records ever added (Total_Record_Count): the newest sequence number."""
        return self._read_counts()[1]

    def clear(self) -> None:
        self._counts = None
        self.log.sql(f"DELETE FROM {self.log.table}")

    def close(self) -> None:
        self.log.close()

    def _rows(self, where: str, params: tuple[float | int, ...], descending: bool, limit: int) -> list[Record]:
        order = "DESC" if descending else "ASC"
        rows = self.log.sql(f"SELECT id, ts, value FROM {self.log.table} WHERE {where} ORDER BY id {order} "
                            f"LIMIT {int(limit)}", params)
        out = [Record(int(r[0]), float(r[1]), math.nan if r[2] is None else float(r[2])) for r in rows]
        return sorted(out, key=lambda r: r.sequence)

    def _first_id(self) -> int:
        rows = self.log.sql(f"SELECT MIN(id) FROM {self.log.table}")
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def by_position(self, index: int, count: int, limit: int) -> tuple[list[Record], bool]:
        """Records from the 1-based ``index`` (oldest kept = 1), ``count`` of them, backwards when negative.
        Returns (records, more available than returned)."""
        first = self._first_id()
        if not first or index < 1 or count == 0:
            return [], False
        seq = first + index - 1
        return self.by_sequence(seq, count, limit)

    def by_sequence(self, seq: int, count: int, limit: int) -> tuple[list[Record], bool]:
        want = min(abs(count), limit)
        if count > 0:
            rows = self._rows("id >= ?", (seq,), False, want + 1)
            return rows[:want], len(rows) > want
        rows = self._rows("id <= ?", (seq,), True, want + 1)
        return rows[-want:] if len(rows) > want else rows, len(rows) > want

    def by_time(self, ts: float, count: int, limit: int) -> tuple[list[Record], bool]:
        want = min(abs(count), limit)
        if count > 0:
            rows = self._rows("ts > ?", (ts,), False, want + 1)
            return rows[:want], len(rows) > want
        rows = self._rows("ts < ?", (ts,), True, want + 1)
        return rows[-want:] if len(rows) > want else rows, len(rows) > want

    def all(self, limit: int) -> tuple[list[Record], bool]:
        rows = self._rows("1 = 1", (), False, limit + 1)
        return rows[:limit], len(rows) > limit


class TrendLogs:
    """The logs' stores by instance, each log's Start_Time/Stop_Time window, and when the next clock-aligned
    record is due."""

    def __init__(self, data_dir: str | Path, instances: Sequence[int], depth: int,
                 stop_when_full: Sequence[bool]) -> None:
        self.stores = {i: TrendStore(data_dir, i, depth, stop_when_full[i - 1]) for i in instances}
        self.window: dict[int, tuple[float | None, float | None]] = {i: (None, None) for i in instances}
        self.next_log_s = 0.0

    def __getitem__(self, instance: int) -> TrendStore:
        return self.stores[instance]

    def items(self) -> ItemsView[int, TrendStore]:
        return self.stores.items()

    def values(self) -> ValuesView[TrendStore]:
        return self.stores.values()

    def due(self, now: float, interval_s: float) -> float | None:
        """The record time (a multiple of ``interval_s``) when a record is due at ``now``, else None. The
        first call only sets the next slot: a start or an interval change does not log at once."""
        if interval_s <= 0:
            return None
        slot = math.floor(now / interval_s) * interval_s
        if self.next_log_s == 0.0:
            self.next_log_s = slot + interval_s
            return None
        if now < self.next_log_s:
            return None
        self.next_log_s = slot + interval_s
        return slot

    def record(self, ts: float, enabled: Sequence[bool], value_of: Callable[[int], float]) -> int:
        """One record at ``ts`` on every enabled log whose window holds ``ts``; how many were stored."""
        stored = 0
        for instance, store in self.stores.items():
            start, stop = self.window[instance]
            if not enabled[instance - 1] or (start is not None and ts < start) or (stop is not None and ts > stop):
                continue
            if store.append(ts, value_of(instance)) is not None:
                stored += 1
        return stored

    def close(self) -> None:
        for store in self.stores.values():
            store.close()


def records_per_apdu(max_apdu_bytes: int) -> int:
    return max(1, (max_apdu_bytes - ACK_OVERHEAD_BYTES) // RECORD_BYTES)


def datetime_to_epoch(value: Any) -> float | None:
    """A BACnet DateTime in local time as seconds since 1970; None for an unspecified (all-wildcard) one."""
    date, tod = value.date, value.time
    year, month, day = date[0] + 1900, date[1], date[2]
    if 255 in (date[0], month, day):
        return None
    hour, minute, second, hundredths = (0 if v == 255 else v for v in tod)
    return time.mktime((year, month, day, hour, minute, second, 0, 0, -1)) + hundredths / 100.0
