"""``meter pq``: the recorder's PQ events, captures and data recorders, through the running meter's control socket.

    meter pq events [--since T] [--until T]        PQ events (dips, swells, interruptions, RVC, transients)
    meter pq capture [--ascii]                     a waveform capture now (COMTRADE in data_dir/waveforms); waits
                                                   until it is written, and fails (exit 1) when it is not
    meter pq captures                              the captures kept
    meter pq recorders                             the data recorders and their record counts
    meter pq read N [--since T] [--until T]        records of data recorder N (1-16)
    meter pq aggregates KIND [--since T] [--until T]   stored 3s, 10min or 2h values
    meter pq counters-reset                        set the disturbance counters back to zero (master user)
    meter pq export --format pqdif -o F [--since T] [--until T] [--parts events,captures,trends]
                                                   a PQDIF file (IEEE 1159.3) from the data directory
    meter pq trend TARGET [--interval hourly|daily|weekly|monthly]   trend and forecast of a 10-min quantity

Times are seconds since 1970 (UTC) or ISO dates (2026-01-31T12:00); output is JSON.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from firmware.cli.run import DEFAULT_CONFIG
from firmware.config.store import ConfigStore
from firmware.control import ControlClient
from firmware.recorder.pqdif.export import FORMATS, PARTS, export_from_config
from firmware.recorder.trending import TARGETS, trend_of
from metrology.reports.trend import INTERVALS
from hal.errors import MeterError

CAPTURE_POLL_S = 0.2           # `meter pq capture` asks for the capture's outcome this often
CAPTURE_MARGIN_S = 5.0         # beyond the recorder's own deadline (the control socket's round trips)


def _time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither seconds since 1970 nor an ISO date "
                                         "(2026-01-31T12:00)") from None
    return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).timestamp()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pq", help="PQ events, waveform captures and data recorders of the running meter (JSON)")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--run-dir", default=None)
    what = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    ev = what.add_parser("events", help="PQ events in a time range")
    cap = what.add_parser("capture", help="a waveform capture now")
    cap.add_argument("--ascii", action="store_true", help="ASCII .dat instead of [pq] capture_format")
    what.add_parser("captures", help="the captures kept")
    what.add_parser("recorders", help="the data recorders")
    rd = what.add_parser("read", help="records of a data recorder in a time range")
    rd.add_argument("recorder", type=int, help="recorder number, 1-16")
    ag = what.add_parser("aggregates", help="stored 3-s, 10-min or 2-h values in a time range")
    ag.add_argument("kind", choices=("3s", "10min", "2h"))
    what.add_parser("counters-reset", help="set the disturbance counters (dips, swells, ...) back to zero")
    ex = what.add_parser("export", help="events, captures and 10-min values as a PQDIF file (IEEE 1159.3)")
    ex.add_argument("--format", choices=FORMATS, required=True)
    ex.add_argument("--output", "-o", required=True, help="file to write (- for stdout)")
    ex.add_argument("--parts", default=",".join(PARTS),
                    help=f"what goes in, comma-separated (default: {','.join(PARTS)})")
    ex.add_argument("--data-dir", default=None, help="read this data directory (default: the configuration's)")
    tr = what.add_parser("trend", help="trend and forecast of a quantity (ION7400 trending and forecasting)")
    tr.add_argument("target", choices=tuple(TARGETS))
    tr.add_argument("--interval", choices=tuple(INTERVALS), default="daily")
    tr.add_argument("--data-dir", default=None, help="read this data directory (default: the configuration's)")
    for q in (ev, rd, ag, ex):
        q.add_argument("--since", type=_time, default=None, help="from this time (s since 1970 or ISO date)")
        q.add_argument("--until", type=_time, default=None, help="up to this time")
        q.add_argument("--limit", type=int, default=1000)
    p.set_defaults(func=_pq)


def _export(args: argparse.Namespace, config: Any) -> int:
    """The file is made from the data directory itself: it needs no running meter."""
    since = args.since if args.since is not None else 0.0
    until = args.until if args.until is not None else time.time()
    data = export_from_config(config, since, until, tuple(p for p in args.parts.split(",") if p), args.data_dir)
    if args.output == "-":
        sys.stdout.buffer.write(data)
    else:
        Path(args.output).write_bytes(data)
        print(json.dumps({"output": args.output, "bytes": len(data), "format": args.format}))
    return 0


def _pq(args: argparse.Namespace) -> int:
    config = ConfigStore(args.config).load()
    if args.what == "export":
        return _export(args, config)
    if args.what == "trend":
        print(json.dumps(trend_of(args.data_dir or config.meter.data_dir, args.target, args.interval), indent=1))
        return 0
    run_dir = Path(args.run_dir or config.meter.run_dir)
    client = ControlClient(run_dir / "control.sock")
    w = args.what
    call: dict[str, Any]
    if w == "events":
        call = {"cmd": "recorder.events", "since_ts": args.since, "until_ts": args.until, "limit": args.limit}
    elif w == "capture":
        call = {"cmd": "recorder.capture", "ascii": args.ascii}
    elif w == "captures":
        call = {"cmd": "recorder.captures"}
    elif w == "recorders":
        call = {"cmd": "recorder.recorders"}
    elif w == "counters-reset":
        call = {"cmd": "metrology.pq_counters_reset"}
    elif w == "read":
        call = {"cmd": "recorder.read", "recorder": args.recorder, "since_ts": args.since, "until_ts": args.until,
                "limit": args.limit}
    else:
        call = {"cmd": "recorder.aggregates", "kind": args.kind, "since_ts": args.since, "until_ts": args.until,
                "limit": args.limit}
    cmd = call.pop("cmd")
    try:
        result = client.call(cmd, **call)
        if w == "capture":
            result = _capture_outcome(client, result)
    except OSError as exc:
        raise MeterError(f"cannot reach the meter at {run_dir / 'control.sock'} ({exc}); is `meter run` running "
                         "with this configuration?") from None
    print(json.dumps(result, indent=1, default=str))
    return 0


def _capture_outcome(client: ControlClient, asked: dict[str, Any]) -> dict[str, Any]:
    """Wait (at most the recorder's ``wait_s`` and a margin) until the capture is written; MeterError when it
    failed or did not come."""
    name = asked["name"]
    deadline = time.monotonic() + float(asked.get("wait_s", 10.0)) + CAPTURE_MARGIN_S
    while True:
        state = client.call("recorder.capture_status", name=name)
        if state["status"] == "written":
            return {**asked, **state}
        if state["status"] == "failed":
            raise MeterError(f"capture {name} failed: {state.get('reason', 'no reason given')}")
        if state["status"] != "pending":
            raise MeterError(f"capture {name}: the recorder no longer knows it (restarted?); no file was written")
        if time.monotonic() >= deadline:
            raise MeterError(f"capture {name} was not written by its deadline ({asked.get('wait_s')} s and "
                             f"{CAPTURE_MARGIN_S:g} s); is acquisition running (meter status)?")
        time.sleep(CAPTURE_POLL_S)
