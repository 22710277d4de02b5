"""Load-profile capacity: a year of 16 channels at 15 min (35,040 records, SPEC §5) written to the load
profile's log, then retrieved all / since the last read / for the last 60 days; time and file size.

Baseline, in the same run: the same rows through bare ``sqlite3`` (one ``executemany`` of pre-encoded
JSON, ``SELECT`` without decoding), so the ratios show what the log store's framing (JSON per row,
circular depth, decoding on read) costs. On the device a record is written once per interval; the year
is written here in one transaction to measure the store, not the interval clock.
"""
from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from firmware.config.sections.revenue import DEFAULT_LP_CHANNELS
from firmware.revenue.loadprofile import LoadProfile, record
from firmware.revenue.settings import parse_lp_channel
from metrology.tou import TimeZone

INTERVAL_S = 900
YEAR_RECORDS = 365 * 96
START = datetime(2023, 1, 1, tzinfo=timezone.utc).timestamp()


def _rows() -> list[tuple[float, dict]]:
    out = []
    for i in range(YEAR_RECORDS):
        start = START + i * INTERVAL_S
        data = [1234.5678 + i * 0.001 + k for k in range(len(DEFAULT_LP_CHANNELS))]
        out.append((start + INTERVAL_S, record("interval", "", start, start + INTERVAL_S, data, 0)))
    return out


def _baseline(path: Path, rows: list[tuple[float, dict]]) -> tuple[float, float]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE lp (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL, row TEXT)")
    encoded = [(ts, json.dumps(row)) for ts, row in rows]
    t0 = time.perf_counter()
    db.execute("BEGIN")
    db.executemany("INSERT INTO lp (ts, row) VALUES (?, ?)", encoded)
    db.execute("COMMIT")
    write = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = len(db.execute("SELECT id, ts, row FROM lp ORDER BY id").fetchall())
    read = time.perf_counter() - t0
    assert n == YEAR_RECORDS
    db.close()
    return write, read


def main() -> None:
    channels = tuple(parse_lp_channel(n) for n in DEFAULT_LP_CHANNELS)
    rows = _rows()
    with tempfile.TemporaryDirectory() as tmp:
        base_write, base_read = _baseline(Path(tmp) / "baseline.db", rows)
        path = Path(tmp) / "revenue.db"
        lp = LoadProfile(path, channels, INTERVAL_S, YEAR_RECORDS)
        t0 = time.perf_counter()
        lp.store.append_many(rows)
        write = time.perf_counter() - t0
        timings = {}
        for name, call in (("all", lambda: lp.read_all()), ("since last read", lambda: lp.read_since_last()),
                           ("last 60 days", lambda: lp.read_days(60, START + YEAR_RECORDS * INTERVAL_S + 1,
                                                                 TimeZone()))):
            t0 = time.perf_counter()
            got = call()
            timings[name] = (time.perf_counter() - t0, len(got))
        size = path.stat().st_size + sum(p.stat().st_size for p in Path(tmp).glob("revenue.db-*"))
        lp.close()
    print(f"{YEAR_RECORDS} records x {len(channels)} channels (365 days at 15 min)")
    print(f"write (one transaction)  {write:6.2f} s   {write / base_write:5.1f}x bare sqlite3 ({base_write:.2f} s)")
    for name, (t, n) in timings.items():
        print(f"read {name:18s}  {t:6.2f} s   {n} records   {t / base_read:5.1f}x bare sqlite3 read "
              f"({base_read:.2f} s, no decoding)")
    print(f"file size  {size / 1e6:.1f} MB ({size / YEAR_RECORDS:.0f} bytes per record)")


if __name__ == "__main__":
    main()
