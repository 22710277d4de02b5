"""The meter's event log: one circular log of prioritised events that every service writes and the revenue
audit, the web page, the display and the protocols read (SPEC §5; ION7400 manual "Event log").

An event has a priority 0-255 (alarm bands: None 0, Info 1-63, Low 64-127, Medium 128-191, High 192-255),
the service that wrote it, a cause (what happened: ``sag``, ``login_invalid``, ``config_change``...), an
effect (what the meter did or the value concerned), the user behind it when there is one, and a JSON detail.
An event whose priority is not above the cutoff (default 5) is not recorded, as in the ION event log
controller. The depth (default 5,000) bounds the log; the oldest record is overwritten.

The log lives in ``data_dir/events.db`` (SQLite, WAL). Each process opens its own ``EventLog``; SQLite's
locking serialises writers across processes and every append is on disk when it returns (an event must
survive a power failure at once, SPEC §5). The unread counter counts records after the last one a reader
acknowledged with ``mark_read``; the acknowledged id is stored beside the log, so it survives restarts.

Floods. An event recorded with ``aggregate=True`` (failed logins, refused requests: what anyone who reaches a
port can cause) that repeats one already among the newest records (same priority, source, cause, effect and
user, the last one at most ``AGGREGATE_WINDOW_S`` ago) is counted into that record instead of added: its
detail gets ``count``, ``first`` and ``last``. Events of the causes
in ``KEPT_CAUSES`` (changes made by users, lockouts, tamper: the audit trail IEC 62443-3-3 SR 2.8 and IEEE 1686
ask to keep) are also written to a second table, ``event_log_kept``, which only those causes reach: no flood of
failed attempts can overwrite them.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from firmware.storage.syslog import FACILITY_LOCAL0, SyslogSender

from firmware.storage.logstore import LogStore
from hal.errors import StorageError

EVENTS_DB = "events.db"            # under data_dir
TABLE = "event_log"
COLUMNS = {"priority": "INTEGER", "source": "TEXT", "cause": "TEXT", "effect": "TEXT", "user": "TEXT",
           "detail": "JSON"}
DEFAULT_CUTOFF = 5                 # ION7400 manual: "The default event log cutoff value is 5"
DEFAULT_DEPTH = 5000               # ION7400 manual: event log depth
PRIORITY_MAX = 255
DEFAULT_SYSLOG_PRIORITY = 128     # Medium and above: alarms, PQ events, refusals; 256 sends none
KEPT_TABLE = "event_log_kept"
# Causes only a user's own action or the meter's protection produces, never a stranger's failed attempt.
KEPT_CAUSES = frozenset({"lockout", "user_change", "config_change", "config_tamper", "config_hand_edit",
                         "certificate_change", "default_password", "provision", "command", "communication_control",
                         "reinitialize", "trend_log_cleared", "password_lockout"})
AGGREGATE_WINDOW_S = 600.0         # a repeat this long after the last one starts a new record
AGGREGATE_SCAN = 256               # how many of the newest records a repeat is looked for among

# Alarm/event priority bands (ION7400 manual, alarm priorities), highest first.
BANDS: tuple[tuple[str, int], ...] = (("high", 192), ("medium", 128), ("low", 64), ("info", 1), ("none", 0))


def band(priority: int) -> str:
    """The name of the band a priority falls in."""
    for name, lowest in BANDS:
        if priority >= lowest:
            return name
    return "none"


@dataclass(frozen=True)
class Event:
    priority: int
    source: str
    cause: str
    effect: str = ""
    user: str = ""
    detail: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not 0 <= int(self.priority) <= PRIORITY_MAX:
            raise StorageError(f"event {self.cause!r}: priority {self.priority} is outside 0..{PRIORITY_MAX}")
        if not self.source or not self.cause:
            raise StorageError("an event needs a source and a cause")


class EventLog:
    def __init__(self, data_dir: str | Path, cutoff: int = DEFAULT_CUTOFF, depth: int = DEFAULT_DEPTH,
                 syslog: SyslogSender | None = None, syslog_priority: int = DEFAULT_SYSLOG_PRIORITY) -> None:
        """``syslog``: where events at or above ``syslog_priority`` also go (recorded or not)."""
        if not 0 <= cutoff <= PRIORITY_MAX:
            raise StorageError(f"event log cutoff {cutoff} is outside 0..{PRIORITY_MAX}")
        self.path = Path(data_dir) / EVENTS_DB
        self.cutoff = cutoff
        self.syslog = syslog
        self.syslog_priority = syslog_priority
        self.store = LogStore(self.path, TABLE, COLUMNS, depth, "circular")
        self.kept = LogStore(self.path, KEPT_TABLE, COLUMNS, depth, "circular")
        self.discarded = 0
        self.aggregated = 0
        self._aggregate_lock = threading.Lock()
        self.store.sql("CREATE TABLE IF NOT EXISTS event_readers (reader TEXT PRIMARY KEY, last_id INTEGER NOT NULL)")

    @classmethod
    def from_config(cls, config: Any) -> EventLog:
        """The event log of a meter configuration (``[meter] data_dir``, ``[events]``)."""
        section, sec = config["events"], config["security"]
        sender = None
        if sec.syslog_address and section.syslog_priority <= PRIORITY_MAX:
            sender = SyslogSender(sec.syslog_address, sec.syslog_port, FACILITY_LOCAL0)
        return cls(config.meter.data_dir, section.cutoff, section.depth, sender, section.syslog_priority)

    def close(self) -> None:
        self.store.close()
        self.kept.close()
        if self.syslog is not None:
            self.syslog.close()

    def record(self, event: Event, ts: float | None = None, aggregate: bool = False,
               syslog: bool = True) -> int | None:
        """Append one event; its record id, or None when its priority is not above the cutoff. With
        ``aggregate``, a repeat of a recent identical event is counted into it (its id is returned).
        ``syslog=False``: the caller sends it to syslog itself (security events, facility auth)."""
        if syslog and self.syslog is not None and event.priority >= self.syslog_priority:
            self.syslog.send(event.priority, event.cause, f"{event.source} {event.cause}: {event.effect}".strip(),
                             {"source": event.source, "user": event.user, **dict(event.detail or {})})
        if event.priority <= self.cutoff:
            self.discarded += 1
            return None
        ts = time.time() if ts is None else ts
        if aggregate:
            merged = self._aggregate(event, ts)
            if merged is not None:
                self.aggregated += 1
                return merged
        row = {"priority": int(event.priority), "source": event.source, "cause": event.cause,
               "effect": event.effect, "user": event.user, "detail": dict(event.detail or {})}
        if event.cause in KEPT_CAUSES:
            self.kept.append(ts, row)
        return self.store.append(ts, row)

    def _aggregate(self, event: Event, ts: float) -> int | None:
        """Count ``event`` into the newest identical record within the window; its id, or None."""
        with self._aggregate_lock:
            self.store.sql("BEGIN IMMEDIATE")        # one writer across processes between read and update
            try:
                rows = self.store.sql(
                    f"SELECT id, ts, detail FROM {TABLE} WHERE id > (SELECT COALESCE(MAX(id), 0) FROM {TABLE})"
                    " - ? AND priority = ? AND source = ? AND cause = ? AND effect = ? AND user = ? ORDER BY id DESC LIMIT 1",
                    (AGGREGATE_SCAN, int(event.priority), event.source, event.cause, event.effect, event.user))
                if not rows:
                    self.store.sql("COMMIT")
                    return None
                rid, first_ts, raw = rows[0]
                detail = json.loads(raw) if raw else {}
                if ts - float(detail.get("last", first_ts)) > AGGREGATE_WINDOW_S:
                    self.store.sql("COMMIT")
                    return None
                detail.update(count=int(detail.get("count", 1)) + 1, first=float(detail.get("first", first_ts)),
                              last=ts)
                self.store.sql(f"UPDATE {TABLE} SET detail = ? WHERE id = ?", (json.dumps(detail), rid))
                self.store.sql("COMMIT")
                return int(rid)
            except BaseException:
                self.store.sql("ROLLBACK")
                raise

    def read_kept(self, since_id: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """The kept events (``KEPT_CAUSES``), oldest first."""
        return self.kept.read(since_id=since_id, limit=limit)

    def record_many(self, items: list[tuple[Event, float]]) -> list[int]:
        """Append several (event, ts) in one transaction (one write to disk); the ids of those above the cutoff."""
        rows = []
        for event, ts in items:
            if event.priority <= self.cutoff:
                self.discarded += 1
                continue
            rows.append((ts, {"priority": int(event.priority), "source": event.source, "cause": event.cause,
                              "effect": event.effect, "user": event.user, "detail": dict(event.detail or {})}))
        kept = [(ts, row) for ts, row in rows if row["cause"] in KEPT_CAUSES]
        if kept:
            self.kept.append_many(kept)
        return self.store.append_many(rows) if rows else []

    def read(self, since_id: int = 0, limit: int | None = None, since_ts: float | None = None,
             until_ts: float | None = None, min_priority: int = 0) -> list[dict[str, Any]]:
        """Events oldest first, after ``since_id``, within [since_ts, until_ts], at least ``min_priority``."""
        rows = self.store.read(since_id=since_id, since_ts=since_ts)
        out = [r for r in rows if r["priority"] >= min_priority and (until_ts is None or r["ts"] <= until_ts)]
        return out[:limit] if limit is not None else out

    def last(self, n: int) -> list[dict[str, Any]]:
        return self.store.last(n)

    def _acknowledged(self, reader: str) -> int:
        rows = self.store.sql("SELECT last_id FROM event_readers WHERE reader = ?", (reader,))
        return int(rows[0][0]) if rows else 0

    def unread(self, reader: str = "default") -> int:
        """Records after the last one ``reader`` acknowledged (those overwritten are not counted)."""
        return int(self.store.sql(f"SELECT COUNT(*) FROM {TABLE} WHERE id > ?", (self._acknowledged(reader),))[0][0])

    def mark_read(self, reader: str = "default", up_to_id: int | None = None) -> int:
        """Acknowledge every record up to ``up_to_id`` (default: the newest); the id acknowledged."""
        if up_to_id is None:
            up_to_id = int(self.store.sql(f"SELECT MAX(id) FROM {TABLE}")[0][0] or 0)
        self.store.sql("INSERT INTO event_readers (reader, last_id) VALUES (?, ?) "
                       "ON CONFLICT(reader) DO UPDATE SET last_id = MAX(last_id, excluded.last_id)",
                       (reader, int(up_to_id)))
        return self._acknowledged(reader)
