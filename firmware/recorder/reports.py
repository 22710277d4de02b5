"""The week's compliance reports (EN 50160, IEEE 519) from the aggregates the recorder keeps: what ``meter report``
and the web's /api/reports compute.

The records are read through ``read_aggregates`` (``firmware.recorder.store``). The installation (nominal voltage
and frequency, wiring, I_L) comes from the configuration's ``[metrology]`` section; IEEE 519 also needs the
short-circuit ratio at the point of common coupling, which only the user knows.

3-s records are read one day at a time, and only the values a report uses are kept from them, so a week
of them (201,600 records) does not have to fit in memory at once.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

from firmware.recorder import store
from metrology.reports import en50160, ieee519
from metrology.reports.common import DAY_S
from hal.errors import ConfigError

def read_aggregates(data_dir: str | Path, kind: str, since_ts: float, until_ts: float) -> list[dict]:
    """Records of ``kind`` with ``since_ts < ts <= until_ts`` (an interval ending on the week's first instant
    belongs to the week before), oldest first, from the recorder's store."""
    return [r for r in store.read_aggregates(data_dir, kind, since_ts, until_ts) if r["ts"] > since_ts]


def installation(config: Any, data_dir: str | None = None) -> dict[str, Any]:
    """What the reports need of the installation, from the configuration's ``[metrology]`` section (``config``: a
    ``firmware.config.Config``, not imported: the configuration imports this package's capture modes)."""
    m = config.metrology
    line_values = m.system_type in ("DELTA", "2L")
    # Udin is L-L for DELTA and 2L, L-N otherwise; a single phase's bus voltage is its own
    bus_v = m.nominal_voltage if line_values or m.system_type == "SINGLE" else m.nominal_voltage * math.sqrt(3)
    return {"data_dir": str(data_dir or config.meter.data_dir), "nominal_v": float(m.nominal_voltage),
            "nominal_f": float(m.nominal_frequency), "voltage": "v_ll" if line_values else "v_ln",
            "bus_kv": bus_v / 1000.0, "il_a": float(m.tdd_demand_current or m.nominal_current),
            "signalling_hz": tuple(float(f) for f in config.pq.signalling_frequencies)}


def _three_s(data_dir: str, start: float, end: float, keep: tuple[str, ...]) -> Iterator[dict]:
    """The week's 3-s records day by day, with only the ``keep`` values."""
    day = start
    while day < end:
        for r in read_aggregates(data_dir, "3s", day, min(day + DAY_S, end)):
            r["values"] = {k: v for k, v in r["values"].items() if k in keep}
            yield r
        day += DAY_S


def en50160_week(inst: dict[str, Any], start: float, end: float) -> tuple[dict[str, Any], list[dict]]:
    """The EN 50160 report of the week (start, end] and the records it was computed from."""
    data_dir = inst["data_dir"]
    records = (read_aggregates(data_dir, "10min", start, end) + read_aggregates(data_dir, "2h", start, end)
               + list(_three_s(data_dir, start, end, ("freq", "msv"))))
    out = en50160.report(records, start, end, inst["nominal_v"], inst["nominal_f"], inst["voltage"],
                         store.read_events(data_dir, start, end), inst.get("signalling_hz", ()))
    out["source"] = str(Path(data_dir) / store.RECORDER_DB)
    return out, records


def ieee519_week(inst: dict[str, Any], start: float, end: float, isc_il: float | None, il_a: float | None = None,
                 bus_kv: float | None = None) -> tuple[dict[str, Any], list[dict]]:
    """The IEEE 519 report of the week (start, end] and its 10-min records; ``il_a`` and ``bus_kv`` default to
    the installation's. ConfigError when the short-circuit ratio is missing or a value is not positive."""
    if isc_il is None:
        raise ConfigError("meter report ieee519: give the short-circuit ratio ISC/IL at the point of common "
                          "coupling with --isc-il (e.g. --isc-il 35); the limits depend on it")
    bus_kv = bus_kv if bus_kv is not None else inst["bus_kv"]
    il_a = il_a if il_a is not None else inst["il_a"]
    if not (il_a > 0 and isc_il > 0 and bus_kv > 0):
        raise ConfigError("meter report ieee519: --isc-il, --il and --bus-kv must be positive")
    data_dir = inst["data_dir"]
    ten = read_aggregates(data_dir, "10min", start, end)
    three = _three_s(data_dir, start, end, ("h_mag", "thd", "tdd"))
    out = ieee519.report(iter([*three, *ten]), start, end, bus_kv, isc_il, il_a, inst["voltage"])
    out["source"] = str(Path(data_dir) / store.RECORDER_DB)
    return out, ten
