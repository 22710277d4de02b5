"""``meter pq export --format pqdif`` and the web's download: a PQDIF file of what the recorder keeps in a time
range, read from the data directory (read-only: the recorder is never waited for).

The range selects the PQ events that started in it, the captures whose trigger lies in it and the 10-min values
that end in it. At most ``MAX_CAPTURES`` captures (the newest) and ``MAX_EVENTS`` events go into one file, so a
file stays within tens of megabytes whatever range is asked.
"""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import numpy as np

from firmware.recorder.capture import WAVEFORMS_DIR, capture_names
from firmware.recorder.pqdif import logical
from firmware.recorder.pqdif.physical import write_records
from firmware.recorder.store import read_aggregates, read_events
from hal.comtrade import read_comtrade
from hal.errors import ConfigError, MeterError
from metrology.events import KINDS

FORMATS = ("pqdif",)                # the export formats (meter pq export --format, GET /api/pq/export)
PARTS = ("events", "captures", "trends")
MAX_CAPTURES = 20
MAX_EVENTS = 10000
MAX_TREND_RECORDS = 4032           # four weeks of 10-min values


def _trigger_s(name: str) -> float | None:
    """The trigger time of a capture from its name (``YYYYMMDDTHHMMSS<ns>Z_kind``)."""
    try:
        stamp = dt.datetime.strptime(name[:15], "%Y%m%dT%H%M%S").replace(tzinfo=dt.timezone.utc)
        return stamp.timestamp() + int(name[15:24]) / 1e9
    except ValueError:
        return None


def load_capture(cfg: Path) -> logical.Capture:
    """A COMTRADE capture in primary units (the recorder writes at the terminals with the PT/CT ratios)."""
    rec = read_comtrade(cfg)
    ratio = np.array([a.primary / a.secondary if a.ps.upper() == "S" and a.primary and a.secondary else 1.0
                      for a in rec.analogs])
    start = rec.start.replace(tzinfo=dt.timezone.utc).timestamp() if rec.start else 0.0
    trigger = rec.trigger.replace(tzinfo=dt.timezone.utc).timestamp() if rec.trigger else None
    return logical.Capture(cfg.stem, start, trigger, np.asarray(rec.times_s, dtype=np.float64),
                           tuple(a.name for a in rec.analogs), rec.analog.astype(np.float64) * ratio,
                           cfg.stem.rpartition("_")[2])


def export(data_dir: str | Path, meter_name: str, serial: str, nominal_v: float, nominal_hz: float,
           since: float, until: float, parts: tuple[str, ...] = PARTS, file_name: str = "meter.pqd") -> bytes:
    """The PQDIF file of [since, until] (s since 1970) with the ``parts`` asked."""
    if until < since:
        raise ConfigError(f"export: the range ends ({until:g}) before it starts ({since:g})")
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ConfigError(f"export: {', '.join(sorted(unknown))} is not one of {', '.join(PARTS)}")
    created = time.time()
    records = [logical.container(file_name, created), logical.data_source(meter_name, serial, nominal_v)]
    if "captures" in parts:
        d = Path(data_dir) / WAVEFORMS_DIR
        names = [n for n in capture_names(d) if since <= (_trigger_s(n) or -1.0) <= until][-MAX_CAPTURES:]
        for name in names:
            try:
                records.append(logical.capture_observation(load_capture(d / f"{name}.cfg"), created))
            except (MeterError, OSError, ValueError):
                continue          # overwritten by a newer capture meanwhile, or unreadable: not exported
    if "events" in parts:
        for ev in read_events(data_dir, since, until, KINDS)[:MAX_EVENTS]:
            records.append(logical.event_observation(ev, created, nominal_hz))
    if "trends" in parts:
        ten = read_aggregates(data_dir, "10min", since, until, MAX_TREND_RECORDS, newest=True)
        if ten:
            records.append(logical.trend_observation(ten, created))
    return write_records(records)


def export_from_config(config: Any, since: float, until: float, parts: tuple[str, ...] = PARTS,
                       data_dir: str | Path | None = None) -> bytes:
    m = config.metrology
    return export(data_dir or config.meter.data_dir, config.meter.name, config.meter.serial_number,
                  float(m.nominal_voltage), float(m.nominal_frequency), since, until, parts,
                  f"{config.meter.name}.pqd")
