"""Read-only, resumable reading of another service's log store (``LogStore`` tables, SQLite WAL).

The log store is the durable record of the load profile and the event logs; SQLite in WAL mode lets any
number of readers in other processes read it while its one writer appends, without blocking it. A feed
opens the file read-only and returns the records after a cursor (the record id), oldest first; the
caller keeps the cursor (e.g. in its own outbox, in the same transaction as what it made of the records).
A file or table not there yet reads as empty.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from hal.errors import StorageError


class LogFeed:
    def __init__(self, path: str | Path, table: str, json_columns: tuple[str, ...] = ()) -> None:
        if not table.isidentifier():
            raise StorageError(f"log feed table {table!r} is not an identifier")
        self.path = Path(path)
        self.table = table
        self.json_columns = set(json_columns)
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None and self.path.exists():
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5.0,
                                       check_same_thread=False)
            self._db.row_factory = sqlite3.Row
        return self._db

    def read(self, after_id: int, limit: int = 500) -> list[dict[str, Any]]:
        return self._select("WHERE id > ? ORDER BY id LIMIT ?", (int(after_id), int(limit)))

    def read_range(self, since_ts: float | None = None, until_ts: float | None = None, limit: int = 500,
                   newest_first: bool = False, at_least: tuple[str, float] | None = None) -> list[dict[str, Any]]:
        """Records with ``since_ts <= ts <= until_ts`` (either bound may be open), oldest or newest first, at most
        ``limit``; ``at_least=(column, value)`` keeps only records whose column is at least the value."""
        where, args = ["1"], []
        if since_ts is not None:
            where.append("ts >= ?")
            args.append(float(since_ts))
        if until_ts is not None:
            where.append("ts <= ?")
            args.append(float(until_ts))
        if at_least is not None:
            if not at_least[0].isidentifier():
                raise StorageError(f"log feed: column {at_least[0]!r} is not an identifier")
            where.append(f"{at_least[0]} >= ?")
            args.append(at_least[1])
        order = "DESC" if newest_first else "ASC"
        return self._select(f"WHERE {' AND '.join(where)} ORDER BY id {order} LIMIT ?", (*args, int(limit)))

    def _select(self, clause: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        db = self._connect()
        if db is None:
            return []
        try:
            rows = db.execute(f"SELECT * FROM {self.table} {clause}", args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise StorageError(f"log feed {self.path} [{self.table}]: {exc}") from exc
        out = []
        for row in rows:
            rec = dict(row)
            for c in self.json_columns & rec.keys():
                if rec[c] is not None:
                    rec[c] = json.loads(rec[c])
            out.append(rec)
        return out

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
