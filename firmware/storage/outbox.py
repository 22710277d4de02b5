"""Store-and-forward queue: messages kept on disk until their receiver acknowledged them.

SQLite in WAL mode with ``synchronous=FULL``, in the same manner as the log store. Each message gets an
id that only grows (``AUTOINCREMENT``: never reused, also after a restart), which is its sequence number
for the receiver. ``put`` stores a batch together with the read positions (``cursors``) of the sources it
came from in one transaction, so a source record is queued exactly once even across a crash. ``ack``
removes what the receiver confirmed; ``defer`` records a failed delivery attempt and when to try again, in the
file, so a sender that restarts keeps counting its retries rather than starting again. The queue is bounded: past ``depth`` messages the oldest are dropped,
counted in ``dropped`` (kept in the file), never silently.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple, Sequence

from firmware.storage.sqlite import open_db
from hal.errors import StorageError


class Message(NamedTuple):
    id: int
    ts: float
    topic: str
    body: str
    qos: int
    retain: bool
    attempts: int = 0       # failed deliveries so far (``defer``)
    next_at: float = 0.0    # wall-clock time before which it is not tried again


class Outbox:
    def __init__(self, path: str | Path, depth: int, table: str = "outbox") -> None:
        if not table.isidentifier():
            raise StorageError(f"outbox table {table!r} is not an identifier")
        self.path = Path(path)
        self.table = table
        self.depth = depth
        self._lock = threading.Lock()
        try:
            self._db = open_db(self.path)
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                             "ts REAL NOT NULL, topic TEXT NOT NULL, body TEXT NOT NULL, qos INTEGER NOT NULL, "
                             "retain INTEGER NOT NULL)")
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {table}_cursor (name TEXT PRIMARY KEY, value REAL)")
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for column, decl in (("attempts", "INTEGER NOT NULL DEFAULT 0"), ("next_at", "REAL NOT NULL DEFAULT 0")):
                if column not in have:      # a file written before retries were kept
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        except sqlite3.Error as exc:
            raise StorageError(f"outbox {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def put(self, messages: Iterable[tuple[float, str, str, int, bool]],
            cursors: Mapping[str, float] | None = None) -> list[int]:
        """Queue (ts, topic, body, qos, retain) messages and move the sources' cursors, atomically."""
        messages = list(messages)
        if not messages and not cursors:
            return []
        ids = []
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for ts, topic, body, qos, retain in messages:
                    cur = self._db.execute(f"INSERT INTO {self.table} (ts, topic, body, qos, retain) "
                                           "VALUES (?, ?, ?, ?, ?)", (ts, topic, body, int(qos), int(retain)))
                    ids.append(int(cur.lastrowid or 0))
                for name, value in (cursors or {}).items():
                    self._db.execute(f"INSERT OR REPLACE INTO {self.table}_cursor (name, value) VALUES (?, ?)",
                                     (name, value))
                excess = self._count() - self.depth
                if excess > 0:
                    self._db.execute(f"DELETE FROM {self.table} WHERE id IN (SELECT id FROM {self.table} "
                                     "ORDER BY id LIMIT ?)", (excess,))
                    self._db.execute(f"INSERT INTO {self.table}_cursor (name, value) VALUES ('.dropped', ?) "
                                     "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (excess,))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StorageError(f"outbox {self.path}: put failed: {exc}") from exc
        return ids

    def pending(self, after_id: int = 0, limit: int = 100) -> list[Message]:
        """Queued messages with id > after_id, oldest first."""
        with self._lock:
            rows = self._db.execute(f"SELECT id, ts, topic, body, qos, retain, attempts, next_at FROM {self.table} "
                                    "WHERE id > ? ORDER BY id LIMIT ?", (after_id, int(limit))).fetchall()
        return [Message(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7]) for r in rows]

    def defer(self, message_id: int, attempts: int, next_at: float) -> None:
        """Record that ``message_id`` failed ``attempts`` times and is not to be tried before ``next_at``."""
        with self._lock:
            try:
                self._db.execute(f"UPDATE {self.table} SET attempts = ?, next_at = ? WHERE id = ?",
                                 (int(attempts), float(next_at), int(message_id)))
            except sqlite3.Error as exc:
                raise StorageError(f"outbox {self.path}: defer failed: {exc}") from exc

    def ack(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")           # one transaction (one fsync) per batch
                self._db.executemany(f"DELETE FROM {self.table} WHERE id = ?", [(i,) for i in ids])
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StorageError(f"outbox {self.path}: ack failed: {exc}") from exc

    def cursor(self, name: str, default: float = 0.0) -> float:
        with self._lock:
            row = self._db.execute(f"SELECT value FROM {self.table}_cursor WHERE name = ?", (name,)).fetchone()
        return default if row is None else float(row[0])

    @property
    def dropped(self) -> int:
        return int(self.cursor(".dropped"))

    def _count(self) -> int:
        return int(self._db.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])

    def count(self) -> int:
        with self._lock:
            return self._count()
