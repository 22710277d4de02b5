"""``meter report en50160|ieee519 [--week present|previous] [--png FILE]``: a week's compliance as JSON on stdout.

Computed by ``firmware.recorder.reports`` from the aggregates the recorder keeps; IEEE 519 also needs the
short-circuit ratio at the point of common coupling, which only the user knows (``--isc-il``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from firmware.cli.config import DEFAULT_CONFIG
from firmware.config.store import ConfigStore
from firmware.recorder.reports import en50160_week, ieee519_week, installation
from metrology.reports import en50160, ieee519
from metrology.reports.common import WEEKS, week_bounds


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
