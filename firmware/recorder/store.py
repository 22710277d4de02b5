"""The recorder's database ``data_dir/recorder.db``: aggregated PQ values and PQ events, and their readers.

``pq_aggregates`` holds one row per 3-s (150/180-cycle), 10-min and 2-h interval: ``ts`` (the interval's end,
s since 1970), ``kind`` ('3s' | '10min' | '2h'), ``flagged`` (IEC 61000-4-30 4.7: a dip, swell or interruption
in it), ``gap`` (samples lost) and ``values``: a JSON object of the interval value names of
``metrology.intervals`` (arrays as lists, indexed as there), rounded to 7 significant digits. Phase angles of
harmonics (``h_angle``) are not stored (an aggregate's angle is only its last value), nor are the 3-s
interharmonics (reports use 3-s values for IEEE 519 harmonics only), which keeps a day of 3-s values near
200 MB. Each kind keeps its own depth, the oldest overwritten, so that a day of 3-s rows never pushes out the
weeks of 10-min rows EN 50160 asks for.

``read_aggregates`` and ``read_events`` are the readers the reports use; it opens the database read-only, so it never waits for or
disturbs the recorder.
"""
from __future__ import annotations

import json
import math
import sqlite3
import threading
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from firmware.ipc.pqrecords import NOT_SENT
from firmware.storage.sqlite import open_db
from hal.errors import StorageError
from metrology.events import VOLTAGE_KINDS

RECORDER_DB = "recorder.db"          # under data_dir
AGGREGATES_TABLE = "pq_aggregates"
EVENTS_TABLE = "pq_events"           # written by the recorder service (a LogStore), read here
EVENTS_COLUMNS = {"kind": "TEXT", "start_ns": "INTEGER", "duration_s": "REAL", "detail": "JSON"}
AGGREGATE_KINDS = ("3s", "10min", "2h")
NOT_STORED = NOT_SENT                # what metrology does not send for each kind is not stored either
SIGNIFICANT_DIGITS = 7               # float32 precision: what the meter's protocols publish


def _number(x: float) -> str:
    return f"{x:.{SIGNIFICANT_DIGITS}g}" if math.isfinite(x) else "NaN"


def values_json(kind: str, values: Mapping[str, Any]) -> str:
    """The ``values`` column: names to floats or (nested) lists, NaN written as ``NaN`` (Python's json reads it)."""
    skip = NOT_STORED.get(kind, ())
    parts = []
    for name, v in values.items():
        if name in skip:
            continue
        a = np.asarray(v, dtype=np.float64)
        if a.ndim == 0:
            text = _number(float(a))
        elif a.ndim == 1:
            text = "[" + ",".join(_number(x) for x in a.tolist()) + "]"
        else:
            text = "[" + ",".join("[" + ",".join(_number(x) for x in row) + "]" for row in a.tolist()) + "]"
        parts.append(f"{json.dumps(name)}:{text}")
    return "{" + ",".join(parts) + "}"


class AggregateStore:
    """Writer of ``pq_aggregates`` (the recorder service); ``depths`` bounds each kind."""

    def __init__(self, data_dir: str | Path, depths: Mapping[str, int]) -> None:
        self.path = Path(data_dir) / RECORDER_DB
        self.depths = {k: int(depths[k]) for k in AGGREGATE_KINDS}
        self._lock = threading.Lock()
        try:
            self._db = open_db(self.path)
            self._db.execute(f'CREATE TABLE IF NOT EXISTS {AGGREGATES_TABLE} (id INTEGER PRIMARY KEY AUTOINCREMENT, '
                             'ts REAL NOT NULL, kind TEXT NOT NULL, flagged INTEGER NOT NULL, gap INTEGER NOT NULL, '
                             '"values" TEXT NOT NULL)')
            self._db.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {AGGREGATES_TABLE}_kind_ts "
                             f"ON {AGGREGATES_TABLE}(kind, ts)")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot open the aggregate store: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def append(self, kind: str, ts: float, flagged: bool, gap: bool, values: Mapping[str, Any]) -> bool:
        """Store one interval; False when that interval is there already (a record read again after a restart)."""
        if kind not in self.depths:
            raise StorageError(f"aggregate kind {kind!r} is not one of {AGGREGATE_KINDS}")
        text = values_json(kind, values)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                cur = self._db.execute(f'INSERT OR IGNORE INTO {AGGREGATES_TABLE} (ts, kind, flagged, gap, "values") '
                                       "VALUES (?, ?, ?, ?, ?)", (float(ts), kind, int(flagged), int(gap), text))
                if cur.rowcount:
                    self._db.execute(f"DELETE FROM {AGGREGATES_TABLE} WHERE kind = ? AND id <= (SELECT id FROM "
                                     f"{AGGREGATES_TABLE} WHERE kind = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                                     (kind, kind, self.depths[kind]))
                self._db.execute("COMMIT")
                return bool(cur.rowcount)
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StorageError(f"{self.path}: storing a {kind} aggregate failed: {exc}") from exc

    def count(self, kind: str) -> int:
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM {AGGREGATES_TABLE} WHERE kind = ?",
                                        (kind,)).fetchone()[0])


def read_aggregates(data_dir: str | Path, kind: str, since_ts: float | None = None,
                    until_ts: float | None = None, limit: int | None = None,
                    newest: bool = False) -> list[dict[str, Any]]:
    """Stored intervals of ``kind`` ('3s' | '10min' | '2h') whose end ``ts`` lies in [since_ts, until_ts], oldest
    first: dicts with ``ts``, ``kind``, ``flagged`` and ``gap`` (bool) and ``values`` (names to floats/lists).
    ``limit`` keeps the first (or with ``newest`` the last) that many, chosen in the database so that a reader
    asking for a few never holds them all. An absent database reads as no rows."""
    if kind not in AGGREGATE_KINDS:
        raise StorageError(f"aggregate kind {kind!r} is not one of {', '.join(AGGREGATE_KINDS)}")
    where, params = ["kind = ?"], list[Any]([kind])
    if since_ts is not None:
        where.append("ts >= ?")
        params.append(float(since_ts))
    if until_ts is not None:
        where.append("ts <= ?")
        params.append(float(until_ts))
    sql = (f'SELECT ts, kind, flagged, gap, "values" FROM {AGGREGATES_TABLE} '
           f"WHERE {' AND '.join(where)} ORDER BY ts{' DESC' if newest else ''}")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    rows = _read_only(data_dir, sql, params, f"reading {kind} aggregates")
    if newest:
        rows.reverse()
    return [{"ts": ts, "kind": k, "flagged": bool(f), "gap": bool(g), "values": json.loads(v)}
            for ts, k, f, g, v in rows]


def read_events(data_dir: str | Path, since_ts: float, until_ts: float,
                kinds: tuple[str, ...] = VOLTAGE_KINDS) -> list[dict[str, Any]]:
    """The finished PQ events of ``kinds`` that started in [since_ts, until_ts), oldest first: dicts with ``ts``
    (start, s since 1970), ``kind``, ``duration_s`` and ``detail`` (the event's record: extreme_pct, phases...)."""
    marks = ",".join("?" * len(kinds))
    rows = _read_only(data_dir, f"SELECT ts, kind, duration_s, detail FROM {EVENTS_TABLE} WHERE kind IN ({marks}) "
                                "AND ts >= ? AND ts < ? ORDER BY ts", [*kinds, float(since_ts), float(until_ts)],
                      "reading PQ events")
    return [{"ts": ts, "kind": k, "duration_s": d, "detail": json.loads(detail) if detail else {}}
            for ts, k, d, detail in rows]


def _read_only(data_dir: str | Path, sql: str, params: list[Any], what: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on recorder.db opened read-only; an absent database or table reads as no rows."""
    path = Path(data_dir) / RECORDER_DB
    if not path.exists():
        return []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise StorageError(f"{path}: {what} failed: {exc}") from exc
