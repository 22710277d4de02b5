"""``meter report en50160|ieee519 [--week present|previous] [--png FILE]``: a week's compliance as JSON on stdout.

The records are the power-quality aggregates the recorder keeps (``firmware.recorder.store``, read through
``read_aggregates`` there). The installation (nominal voltage and
frequency, wiring, I_L) comes from the configuration's ``[metrology]`` section; IEEE 519 also needs the
short-circuit ratio at the point of common coupling, which only the user knows (``--isc-il``).

3-s records are read one day at a time, and only the values a report uses are kept from them, so a week
of them (201,600 records) does not have to fit in memory at once.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from firmware.cli_config import DEFAULT_CONFIG
from firmware.config import Config
from firmware.config.store import ConfigStore
from firmware.recorder import store
from hal.errors import ConfigError
from metrology.reports import en50160, ieee519
from metrology.reports.common import DAY_S, WEEKS, week_bounds


def read_aggregates(data_dir: str | Path, kind: str, since_ts: float, until_ts: float) -> list[dict]:
    """Records of ``kind`` with ``since_ts < ts <= until_ts`` (an interval ending on the week's first instant
    belongs to the week before), oldest first, from the recorder's store."""
    return [r for r in store.read_aggregates(data_dir, kind, since_ts, until_ts) if r["ts"] > since_ts]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="EN 50160 or IEEE 519 compliance of a week, as JSON (and a PNG plot)")
    p.add_argument("standard", choices=("en50160", "ieee519"))
    p.add_argument("--week", choices=WEEKS, default="present",
                   help="observation week, Monday 00:00 UTC to Monday (default %(default)s)")
    p.add_argument("--png", metavar="FILE", help="also draw the week into this PNG file")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="configuration file (default %(default)s)")
    p.add_argument("--data-dir", help="where recorder.db is (default: [meter] data_dir of the configuration)")
    p.add_argument("--at", type=float, metavar="UNIX_TIME",
                   help="a time inside the present week (default: now); --week previous is the week before it")
    p.add_argument("--isc-il", type=float, metavar="RATIO",
                   help="IEEE 519: short-circuit ratio ISC/IL at the point of common coupling (required)")
    p.add_argument("--il", type=float, metavar="A",
                   help="IEEE 519: maximum demand load current I_L, primary A (default: [metrology] "
                        "tdd_demand_current, else nominal_current)")
    p.add_argument("--bus-kv", type=float, metavar="KV",
                   help="IEEE 519: line-to-line voltage at the PCC (default: from [metrology] nominal_voltage)")
    p.set_defaults(func=_report)


def _installation(args: argparse.Namespace) -> dict[str, Any]:
    return installation(ConfigStore(args.config).load(), args.data_dir)


def installation(config: Config, data_dir: str | None = None) -> dict[str, Any]:
    """What the reports need of the installation, from the configuration's ``[metrology]`` section."""
    m = config.metrology
    line_values = m.system_type in ("DELTA", "2L")
    # Udin is L-L for DELTA and 2L, L-N otherwise; a single phase's bus voltage is its own
    bus_v = m.nominal_voltage if line_values or m.system_type == "SINGLE" else m.nominal_voltage * math.sqrt(3)
    return {"data_dir": str(data_dir or config.meter.data_dir), "nominal_v": float(m.nominal_voltage),
            "nominal_f": float(m.nominal_frequency), "voltage": "v_ll" if line_values else "v_ln",
            "bus_kv": bus_v / 1000.0, "il_a": float(m.tdd_demand_current or m.nominal_current)}


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
               + list(_three_s(data_dir, start, end, ("freq",))))
    out = en50160.report(records, start, end, inst["nominal_v"], inst["nominal_f"], inst["voltage"],
                         store.read_events(data_dir, start, end))
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


def _report(args: argparse.Namespace) -> int:
    inst = _installation(args)
    start, end = week_bounds(time.time() if args.at is None else args.at, args.week)
    if args.standard == "en50160":
        out, records = en50160_week(inst, start, end)
        if args.png:
            from firmware.report_plot import en50160_png       # matplotlib only when a plot is asked for
            en50160_png(args.png, out, en50160.series(records, start, end, inst["voltage"]))
    else:
        out, ten = ieee519_week(inst, start, end, args.isc_il, args.il, args.bus_kv)
        if args.png:
            from firmware.report_plot import ieee519_png
            il_a = args.il if args.il is not None else inst["il_a"]
            ieee519_png(args.png, out, ieee519.series(ten, start, end, il_a, inst["voltage"]))
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0
