"""Bounded log store on SQLite in WAL mode, circular or stop-when-full.

One table per log (load profile, event log, data recorders). ``depth`` bounds the number of
records kept: a ``circular`` log drops its oldest records, a ``stop`` log refuses new records
once full (``append`` returns None and ``refused`` counts them), as meters' recorders do. Each
append is one transaction; with ``synchronous=FULL`` (the default) a record that ``append``
returned is on disk, and a power loss never corrupts what was already there.
"""
from __future__ import annotations

import json
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from firmware.storage.sqlite import open_db
from hal.errors import StorageError

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_TYPES = {"INTEGER", "REAL", "TEXT", "BLOB", "JSON"}
MODES = ("circular", "stop")


class LogStore:
    def __init__(self, path: str | Path, table: str, columns: Mapping[str, str], depth: int,
                 mode: str = "circular", synchronous: str = "FULL") -> None:
        if not _IDENT.fullmatch(table) or any(not _IDENT.fullmatch(c) for c in columns):
            raise StorageError(f"log {table!r}: table and column names must be identifiers")
        bad = {c: t for c, t in columns.items() if t.upper() not in _TYPES}
        if bad:
            raise StorageError(f"log {table!r}: column types {bad} not among {sorted(_TYPES)}")
        if mode not in MODES:
            raise StorageError(f"log {table!r}: mode {mode!r} is not one of {MODES}")
        if depth < 1:
            raise StorageError(f"log {table!r}: depth must be at least 1")
        self.path = Path(path)
        self.table = table
        self.columns = {c: t.upper() for c, t in columns.items()}
        self.depth = depth
        self.mode = mode
        self.refused = 0
        self._lock = threading.Lock()
        try:
            self._db = open_db(self.path, synchronous)
            cols = ", ".join(f"{c} {'TEXT' if t == 'JSON' else t}" for c, t in self.columns.items())
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                             f"ts REAL NOT NULL{', ' + cols if cols else ''})")
            self._db.execute(f"CREATE INDEX IF NOT EXISTS {table}_ts ON {table}(ts)")
        except sqlite3.Error as exc:
            raise StorageError(f"log {table!r} at {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def _encode(self, row: Mapping[str, Any]) -> list[Any]:
        unknown = set(row) - set(self.columns) - {"ts"}
        if unknown:
            raise StorageError(f"log {self.table!r}: unknown columns {sorted(unknown)}")
        return [json.dumps(row.get(c)) if t == "JSON" and c in row else row.get(c)
                for c, t in self.columns.items()]

    def append(self, ts: float, row: Mapping[str, Any] | None = None) -> int | None:
        """Add one record; its id, or None if a stop-when-full log is full."""
        ids = self.append_many([(ts, row or {})])
        return ids[0] if ids else None

    def append_many(self, rows: Iterable[tuple[float, Mapping[str, Any]]]) -> list[int]:
        rows = list(rows)
        names = ", ".join(["ts", *self.columns])
        marks = ", ".join("?" * (1 + len(self.columns)))
        ids: list[int] = []
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                count = self._count()
                for ts, row in rows:
                    if self.mode == "stop" and count >= self.depth:
                        self.refused += 1
                        continue
                    cur = self._db.execute(f"INSERT INTO {self.table} ({names}) VALUES ({marks})",
                                           [ts, *self._encode(row)])
                    ids.append(int(cur.lastrowid or 0))
                    count += 1
                if self.mode == "circular" and count > self.depth and ids:
                    self._db.execute(f"DELETE FROM {self.table} WHERE id <= ?", (ids[-1] - self.depth,))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StorageError(f"log {self.table!r}: append failed: {exc}") from exc
        return ids

    def _count(self) -> int:
        return int(self._db.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])

    def count(self) -> int:
        with self._lock:
            return self._count()

    @property
    def full(self) -> bool:
        return self.mode == "stop" and self.count() >= self.depth

    def read(self, since_id: int = 0, limit: int | None = None, since_ts: float | None = None,
             newest_first: bool = False) -> list[dict[str, Any]]:
        """Records with id > since_id (and ts >= since_ts), oldest first unless newest_first."""
        where, params = ["id > ?"], list[Any]([since_id])
        if since_ts is not None:
            where.append("ts >= ?")
            params.append(since_ts)
        sql = (f"SELECT id, ts, {', '.join(self.columns) or 'NULL'} FROM {self.table} WHERE {' AND '.join(where)} "
               f"ORDER BY id {'DESC' if newest_first else 'ASC'}")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [self._decode(r) for r in rows]

    def last(self, n: int) -> list[dict[str, Any]]:
        return list(reversed(self.read(limit=n, newest_first=True)))

    def _decode(self, raw: Sequence[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": raw[0], "ts": raw[1]}
        for (c, t), value in zip(self.columns.items(), raw[2:]):
            out[c] = json.loads(value) if t == "JSON" and value is not None else value
        return out

    def sql(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on this log's database (a companion table kept beside the log); its rows."""
        with self._lock:
            try:
                return self._db.execute(statement, params).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"log {self.table!r}: {exc}") from exc

    def clear(self) -> None:
        with self._lock:
            self._db.execute(f"DELETE FROM {self.table}")
            self.refused = 0
