"""Load profile: interval records of up to 32 channels, with event records, in a bounded log store.

Intervals are aligned to the hour on the local standard clock (1-60 min, SPEC §5, JEM L2395). Each
closed interval is one ``interval`` record [start, end) with its channel values and status flags.
An event that breaks registration (freeze, BPR, preset, energy or demand reset, test mode, time set,
DST change, configuration change; JEM L2425-2475) writes an ``event`` record with the counts from
the start of the interval (or the previous event) up to the event, and the interval goes on from
there. An outage closes the interrupted interval with the OUTAGE flag and writes an ``outage``
event record from the power-down to the power-up time. Test mode stops accumulation; the partial
counts from before it are written with the test-mode event when it ends (JEM L2056, L2071).

Records are only ever appended (``LogStore``: SQLite WAL, synchronous=FULL, circular); the open
interval's accumulators are part of the revenue record (persisted every second), so a restart
resumes the interval where it was, and a record already written before a crash is recognised and
not written twice.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from firmware.revenue.settings import LpChannel
from firmware.storage.logstore import LogStore
from metrology.energy import EnergyIncrement
from metrology.tou import TimeZone

# Status flags of a record (bit values)
FLAGS = {"outage": 1, "time_set": 2, "dst": 4, "freeze": 8, "bpr": 16, "config": 32, "test_mode": 64,
         "partial": 128, "preset": 256, "demand_reset": 512, "energy_reset": 1024, "gap_filled": 2048,
         "gap_unfilled": 4096, "energy_mismatch": 8192}
TABLE = "load_profile"
COLUMNS = {"start": "REAL", "end_ts": "REAL", "kind": "TEXT", "event": "TEXT", "status": "INTEGER",
           "data": "JSON", "info": "JSON"}
MAX_DAYS = 60          # JEM L2485: last N days, N = 0 ... 60
DAY_EDGE_S = 1e-3      # a record ending this little after midnight started before it (times are whole seconds)


def record(kind: str, event: str, start: float, end: float, data: list[float | int | None], status: int = 0,
           info: dict[str, Any] | None = None) -> dict[str, Any]:
    """One load-profile record as the log keeps it, stamped (``ts``) with its end time."""
    return {"start": start, "end_ts": end, "kind": kind, "event": event, "status": status, "data": data,
            "info": info or {}}


class LoadProfile:
    def __init__(self, path: Path, channels: tuple[LpChannel, ...], interval_s: int, depth: int) -> None:
        self.store = LogStore(path, TABLE, COLUMNS, depth, "circular")
        self.channels = channels
        self.interval_s = interval_s
        n = len(channels)
        self.sum = np.zeros(n)
        self.seconds = np.zeros(n)
        self.status = 0                # FLAGS of the open segment
        self.word = 0                  # status word OR'ed over the open segment
        self.index: int | None = None  # open interval number on the local standard clock
        self.seg_start = 0.0           # UTC start of the open segment
        self.paused = False
        self.pulse_last: dict[str, int] = {}
        self.last_read_id = 0
        self.overflowed = False        # a record not yet read since the last read was overwritten

    # ------------------------------------------------------------------ accumulation

    def add(self, inc: EnergyIncrement, comp: EnergyIncrement | None, values: Mapping[str, Any],
            pulses: Mapping[int, int], contacts: Mapping[int, bool], word: int, t_std: float, t_utc: float) -> None:
        """One second whose middle is ``t_utc`` (``t_std`` on the standard clock)."""
        idx = math.floor(t_std / self.interval_s)
        if self.index is None:
            self._open(idx, t_std, t_utc)
        elif idx != self.index:
            boundary = t_utc - (t_std - idx * self.interval_s) if idx > self.index else t_utc
            if idx < self.index:
                self.status |= FLAGS["time_set"]
            self._write("interval", "", self.seg_start, boundary)
            self._open(idx, t_std, t_utc)
        if self.paused:
            return
        for k, ch in enumerate(self.channels):
            if ch.kind == "consumption":
                src = comp if ch.compensated and comp is not None else inc
                self.sum[k] += float(getattr(src, ch.quantity)[ch.index])
                self.seconds[k] += inc.duration_s
            elif ch.kind == "average":
                arr = values.get(ch.quantity)
                v = float(np.asarray(arr).reshape(-1)[ch.index]) if arr is not None else math.nan
                if math.isfinite(v):
                    self.sum[k] += v
                    self.seconds[k] += 1.0
            elif ch.kind == "pulse":
                if ch.index not in pulses:      # the io service not publishing (yet): nothing counted, no jump
                    continue
                count = int(pulses[ch.index])
                last = self.pulse_last.get(str(ch.index), count)
                self.sum[k] += count - last if count >= last else count
                self.pulse_last[str(ch.index)] = count
            elif ch.kind == "contact":
                self.sum[k] = max(self.sum[k], 1.0 if contacts.get(ch.index) else 0.0)
        self.word |= word

    def _open(self, idx: int, t_std: float, t_utc: float) -> None:
        self.index = idx
        self.seg_start = t_utc - (t_std - idx * self.interval_s)
        self._clear()

    def _clear(self) -> None:
        self.sum[:] = 0.0
        self.seconds[:] = 0.0
        self.status = 0
        self.word = 0

    def _values(self) -> list[float | int | None]:
        out: list[float | int | None] = []
        for k, ch in enumerate(self.channels):
            if ch.kind == "average":
                out.append(float(self.sum[k] / self.seconds[k]) if self.seconds[k] > 0 else None)
            elif ch.kind == "status":
                out.append(int(self.word))
            elif ch.kind in ("pulse", "contact"):
                out.append(int(self.sum[k]))
            else:
                out.append(float(self.sum[k]))
        return out

    def _write(self, kind: str, event: str, start: float, end: float, info: dict[str, Any] | None = None) -> int:
        if kind == "interval" and end - start < self.interval_s - 1:
            self.status |= FLAGS["partial"]
        new_id = int(self.store.append(end, record(kind, event, start, end, self._values(), self.status, info)) or 0)
        if new_id - self.store.depth > self.last_read_id:
            # the circular log dropped the oldest record, and it was not read yet (JEM "load profile overflow")
            self.overflowed = True
        return new_id

    # ------------------------------------------------------------------ events

    def event(self, name: str, t_utc: float, info: dict[str, Any] | None = None) -> None:
        """An event that closes the open segment at ``t_utc``; the interval goes on after it."""
        self.status |= FLAGS.get(name, 0)
        self._write("event", name, self.seg_start, t_utc, info)
        self.seg_start = t_utc
        self._clear()

    def flag(self, name: str) -> None:
        """Mark the open interval (e.g. DST change) without closing it."""
        self.status |= FLAGS[name]

    def outage(self, down_utc: float, up_utc: float, t_std_up: float) -> None:
        """Power came back at ``up_utc`` after going down at ``down_utc``."""
        if self.index is not None:
            self.status |= FLAGS["outage"]
            self._write("interval", "", self.seg_start, max(down_utc, self.seg_start))
        self._clear()
        self.status = FLAGS["outage"]
        self._write("event", "outage", down_utc, up_utc, {"down": down_utc, "up": up_utc})
        self.index = math.floor(t_std_up / self.interval_s)
        self.seg_start = up_utc
        self._clear()
        self.status = FLAGS["outage"]

    def pause(self, t_utc: float) -> None:
        self.paused = True

    def resume(self, entered_utc: float, t_utc: float) -> None:
        """End of test mode: the partial counts from before it, with the test-mode event."""
        self.paused = False
        self.status |= FLAGS["test_mode"]
        self._write("event", "test_mode", self.seg_start, t_utc, {"entered": entered_utc, "left": t_utc})
        self.seg_start = t_utc
        self._clear()

    def reconfigured(self, t_utc: float) -> None:
        """The channel layout changed: the old data cannot be read with the new layout, so it is cleared."""
        self.store.clear()
        self.last_read_id = 0
        self.index = None
        self._clear()
        self.status = FLAGS["config"]
        self._write("event", "config", t_utc, t_utc, {"channels": [c.name for c in self.channels]})
        self._clear()

    # ------------------------------------------------------------------ retrieval

    def read_all(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self.store.read(limit=limit)

    def read_since_last(self, limit: int | None = None) -> list[dict[str, Any]]:
        rows = self.store.read(since_id=self.last_read_id, limit=limit)
        if rows:
            self.last_read_id = rows[-1]["id"]
        return rows

    def read_days(self, days: int, now_utc: float, tz: TimeZone) -> list[dict[str, Any]]:
        """Records of the last ``days`` complete local days plus today so far (JEM L2485)."""
        days = max(0, min(int(days), MAX_DAYS))
        local = tz.local(now_utc)
        midnight = datetime(local.year, local.month, local.day) - timedelta(days=days)
        candidates = tz.to_utc(midnight) or tz.to_utc(midnight + timedelta(hours=abs(tz.dst_offset_min) / 60 or 1))
        # records are stamped with their end: the interval ending at that midnight belongs to the day before
        return self.store.read(since_ts=candidates[0] + DAY_EDGE_S if candidates else 0.0)

    # ------------------------------------------------------------------ persistence

    def state(self) -> dict[str, Any]:
        return {"sum": self.sum.tolist(), "seconds": self.seconds.tolist(), "status": self.status,
                "word": self.word, "index": self.index, "seg_start": self.seg_start,
                "pulse_last": self.pulse_last, "last_read_id": self.last_read_id}

    def restore(self, state: dict[str, Any]) -> None:
        if len(state.get("sum", ())) != len(self.channels):
            return
        self.sum = np.array(state["sum"], dtype=float)
        self.seconds = np.array(state["seconds"], dtype=float)
        self.status, self.word = int(state["status"]), int(state["word"])
        self.index, self.seg_start = state["index"], float(state["seg_start"])
        self.pulse_last = dict(state.get("pulse_last", {}))
        self.last_read_id = int(state.get("last_read_id", 0))
        last = self.store.last(1)
        if last and last[0]["start"] == self.seg_start and last[0]["event"] != "config":
            # the record of this segment was written just before the crash that lost this state
            self.seg_start = float(last[0]["end_ts"])
            if last[0]["kind"] == "interval":
                self.index = None
            self._clear()

    def close(self) -> None:
        self.store.close()
