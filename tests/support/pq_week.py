"""A generated week of power-quality aggregate records, as the recorder stores them, with known statistics.

Every 10-min record of a healthy 230 V / 50 Hz wye supply: 230 V per phase, 50.0 Hz, voltage harmonics 3 %
(5th) and 2 % (7th), current 100 A fundamental with 4 A 5th and 2 A 7th, u2 0.5 %, Pst 0.4; every 2-h record
Plt 0.4; 3-s records for the first ``three_s_per_day`` intervals of each day. ``Bad`` runs overwrite a
parameter for a span of 10-min (or 2-h) records, and flagged runs carry absurd values that must be left out.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware.recorder.store import AGGREGATE_KINDS, EVENTS_COLUMNS, EVENTS_TABLE, RECORDER_DB, AggregateStore
from firmware.storage.logstore import LogStore

WEEK_START = 1_764_547_200.0      # Monday 2025-12-01 00:00 UTC
TEN_MIN_S, TWO_H_S, DAY_S = 600.0, 7200.0, 86400.0


@dataclass
class Bad:
    first: int          # first record index (10-min, or 2-h for "plt")
    count: int
    name: str           # "v", "freq", "h5", "i5", "plt", "u2", "flagged"
    value: float


def _values(v: float = 230.0, freq: float = 50.0, h5_pct: float = 3.0, i5_a: float = 4.0,
            u2: float = 0.5) -> dict:
    h = np.zeros((10, 64))
    h[0:3, 1] = v
    h[0:3, 5] = v * h5_pct / 100
    h[0:3, 7] = v * 0.02
    h[6:9, 1] = 100.0
    h[6:9, 5] = i5_a
    h[6:9, 7] = 2.0
    thd = np.full(10, np.nan)
    thd[0:3] = np.hypot(h5_pct, 2.0)
    return {"v_ln": [v] * 3, "freq": freq, "h_mag": h.tolist(), "thd": thd.tolist(), "v_u2": u2,
            "v_unbal": u2, "pst": [0.4] * 3}


def week_records(start: float = WEEK_START, bad: tuple[Bad, ...] = (), three_s_per_day: int = 20) -> list[dict]:
    records: list[dict] = []
    for k in range(int(7 * DAY_S / TEN_MIN_S)):
        ts = start + (k + 1) * TEN_MIN_S
        kw: dict = {}
        flagged = False
        for b in bad:
            if b.first <= k < b.first + b.count and b.name != "plt":
                if b.name == "flagged":
                    flagged, kw = True, {"v": b.value, "freq": 45.0, "h5_pct": 20.0, "i5_a": 50.0, "u2": 9.0}
                else:
                    kw[{"v": "v", "freq": "freq", "h5": "h5_pct", "i5": "i5_a", "u2": "u2"}[b.name]] = b.value
        records.append({"ts": ts, "kind": "10min", "flagged": flagged, "gap": False, "values": _values(**kw)})
        if (k % int(DAY_S / TEN_MIN_S)) < three_s_per_day:
            records.append({"ts": ts - 300.0, "kind": "3s", "flagged": flagged, "gap": False, "values": _values(**kw)})
    for k in range(int(7 * DAY_S / TWO_H_S)):
        plt = next((b.value for b in bad if b.name == "plt" and b.first <= k < b.first + b.count), 0.4)
        records.append({"ts": start + (k + 1) * TWO_H_S, "kind": "2h", "flagged": False, "gap": False,
                        "values": {"plt": [plt] * 3}})
    records.sort(key=lambda r: r["ts"])
    return records


def write_db(data_dir: Path, records: list[dict]) -> Path:
    """The records in the recorder's store (``data_dir/recorder.db``), written as the recorder writes them."""
    aggregates = AggregateStore(data_dir, {kind: 10_000_000 for kind in AGGREGATE_KINDS})
    try:
        for r in records:
            aggregates.append(r["kind"], r["ts"], r["flagged"], r["gap"], r["values"])
    finally:
        aggregates.close()
    return aggregates.path


def write_events(data_dir: Path, events: list[tuple[float, str, float, float]]) -> None:
    """(start ts, kind, duration s, extreme % of Udin) as the recorder stores finished PQ events."""
    log = LogStore(data_dir / RECORDER_DB, EVENTS_TABLE, EVENTS_COLUMNS, 100_000)
    try:
        log.append_many([(ts, {"kind": kind, "start_ns": round(ts * 1e9), "duration_s": duration,
                               "detail": {"kind": kind, "duration_s": duration, "extreme_pct": extreme}})
                         for ts, kind, duration, extreme in events])
    finally:
        log.close()
