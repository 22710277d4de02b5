"""Handlers of the API's power-quality data: the recorder's PQ events, waveform captures (a JSON form to draw and
the COMTRADE files), aggregates by time range, data recorders, and the EN 50160 / IEEE 519 week reports.

The recorder service owns its logs: events and data recorders are asked of it through the control socket;
aggregates and captures are read from its files with the readers it publishes (``read_aggregates`` opens the
database read-only; ``capture_names`` lists the complete captures). A capture is served only under a name in
that list, so no path from a client ever reaches the file system.
"""
from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from starlette.responses import Response

from firmware.recorder import reports
from firmware.control import ControlError
from firmware.recorder.capture import WAVEFORMS_DIR, capture_names
from firmware.recorder.pqdif.export import export_from_config
from firmware.recorder.trending import trend_of
from firmware.recorder.store import read_aggregates
from firmware.web.api import ApiError, Call
from firmware.web.context import WebContext
from hal.comtrade import read_comtrade
from hal.errors import ConfigError, IPCError, MeterError, StorageError
from metrology.events import KINDS, VOLTAGE_KINDS
from metrology.pqclass import ITIC_LOWER, ITIC_UPPER
from metrology.reports.common import week_bounds

MAX_WAVEFORM_POINTS = 200_000     # samples x channels one capture answer carries; longer ones are decimated
COMTRADE_PARTS = ("cfg", "dat")
MAX_WHOLE_RECORDS = 500           # aggregates with all their values (a 3-s one with harmonics is ~10 KB of JSON)
REPORT_CACHE_S = 60.0             # a present week's report is computed again after this; a previous week's is kept
REPORT_CACHE_SIZE = 16
_export_lock = asyncio.Lock()     # one PQDIF file made at a time: each holds its captures in memory
_report_lock = asyncio.Lock()     # one report computed at a time: reading a week of 3-s records is long
_report_cache: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities as null: JSON has no NaN, and a missing value is what they mean here."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def _range(call: Call) -> tuple[float | None, float | None]:
    p = call.params
    if p["since"] is not None and p["until"] is not None and p["until"] < p["since"]:
        raise ApiError(400, f"parameter 'until' ({p['until']:g}) is before 'since' ({p['since']:g})")
    return p["since"], p["until"]


async def _recorder(ctx: WebContext, call: Call, cmd: str, **args: Any) -> Any:
    try:
        return await ctx.control(call.user, f"recorder.{cmd}", **args)
    except ControlError as exc:
        if exc.kind == "AccessDenied":
            raise ApiError(403, f"recorder.{cmd}: {exc}") from None
        if exc.kind in ("ConfigError", "ValueError", "TypeError"):
            raise ApiError(400, f"recorder.{cmd}: {exc}") from None
        raise ApiError(503, f"the recorder did not answer recorder.{cmd}: {exc}; is the recorder service "
                            "running (GET /api/diagnostics)?") from None
    except IPCError as exc:
        raise ApiError(503, f"the meter's control socket did not answer recorder.{cmd}: {exc}") from None


async def pq_events(ctx: WebContext, call: Call) -> Any:
    since, until = _range(call)
    rows = await _recorder(ctx, call, "events", since_ts=since, until_ts=until, limit=call.params["limit"])
    # the curve the page draws the events on, from the classifier that names each event's region (null: longer);
    # only the RMS voltage events (dips, swells, interruptions) lie on it: an RVC or a transient is not one of them
    curve = {"upper": [list(p) for p in ITIC_UPPER], "lower": [list(p) for p in ITIC_LOWER],
             "kinds": list(VOLTAGE_KINDS)}
    counts = {kind: sum(1 for r in rows if r.get("kind") == kind) for kind in KINDS}
    return finite({"events": rows, "itic": curve, "counts": counts})


def capture_dir(ctx: WebContext) -> Path:
    return ctx.data_dir / WAVEFORMS_DIR


def _capture(ctx: WebContext, name: str) -> Path:
    """The .cfg of the capture called ``name``, which must be one of the directory's own list."""
    names = capture_names(capture_dir(ctx))
    if name not in names:
        raise ApiError(404, f"no waveform capture named {name[:80]!r}; GET /api/captures lists the {len(names)} "
                            "kept")
    return capture_dir(ctx) / f"{names[names.index(name)]}.cfg"


async def captures(ctx: WebContext, call: Call) -> Any:
    names = await asyncio.to_thread(capture_names, capture_dir(ctx))
    return {"captures": [{"name": n, "kind": n.rpartition("_")[2]} for n in names]}


def _waveform(cfg: Path, name: str) -> dict[str, Any]:
    try:
        rec = read_comtrade(cfg)
    except (ConfigError, MeterError, OSError, ValueError) as exc:      # ComtradeError is a ConfigError
        raise ApiError(409, f"capture {name} cannot be read: {exc}") from None
    n, k = rec.analog.shape
    step = max(1, math.ceil(n * max(k, 1) / MAX_WAVEFORM_POINTS))
    # primary values: the recorder writes at the terminals (ps = S) with the PT/CT ratios in the .cfg
    ratio = np.array([a.primary / a.secondary if a.ps.upper() == "S" and a.primary and a.secondary else 1.0
                      for a in rec.analogs])
    rows = np.round(rec.analog[::step].astype(np.float64) * ratio, 6)
    return finite({
        "name": name, "station": rec.station, "device": rec.device, "line_hz": rec.line_hz,
        "sample_rate_hz": rec.sample_rate_hz / step if rec.sample_rate_hz else 0.0, "decimation": step,
        "start": rec.start.isoformat() + "Z" if rec.start else None,
        "trigger": rec.trigger.isoformat() + "Z" if rec.trigger else None,
        "trigger_s": ((rec.trigger - rec.start).total_seconds() if rec.start and rec.trigger else None),
        "times_s": [round(float(t), 9) for t in rec.times_s[::step]],
        "channels": [{"name": a.name, "unit": a.unit, "phase": a.phase, "primary": a.primary,
                      "secondary": a.secondary, "values": rows[:, i].tolist()}
                     for i, a in enumerate(rec.analogs)]})


async def capture(ctx: WebContext, call: Call) -> Any:
    name = call.params["name"]
    return await asyncio.to_thread(_waveform, _capture(ctx, name), name)


async def capture_file(ctx: WebContext, call: Call) -> Any:
    name, part = call.params["name"], call.params["part"]
    path = _capture(ctx, name).with_suffix(f".{part}")
    try:
        # read whole (at most 660 cycles x 512 samples x 7 channels, ~12 MB at the largest [pq] settings): the
        # recorder may delete the oldest capture at any moment, and then the answer is a 404, not a cut response
        content = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        raise ApiError(404, f"waveform capture {name} was just overwritten by a newer one; GET /api/captures "
                            "lists those kept") from None
    return Response(content, media_type="text/plain" if part == "cfg" else "application/octet-stream",
                    headers={"cache-control": "no-store",
                             "content-disposition": f'attachment; filename="{name}.{part}"'})


async def aggregates(ctx: WebContext, call: Call) -> Any:
    since, until = _range(call)
    p = call.params
    if not p["names"] and p["limit"] > MAX_WHOLE_RECORDS:
        raise ApiError(400, f"parameter 'limit': at most {MAX_WHOLE_RECORDS} records with all their values; name "
                            "the values wanted with 'names' (e.g. names=v_ln,freq) for up to 10000")
    try:
        rows = await asyncio.to_thread(read_aggregates, ctx.data_dir, p["kind"], since, until, p["limit"],
                                       p["order"] == "newest")
    except StorageError as exc:
        raise ApiError(503, str(exc)) from None
    if p["names"]:
        keep = set(p["names"].split(","))
        for r in rows:
            r["values"] = {k: v for k, v in r["values"].items() if k in keep}
    return finite({"kind": p["kind"], "records": rows})


async def recorders(ctx: WebContext, call: Call) -> Any:
    return finite({"recorders": await _recorder(ctx, call, "recorders")})


async def recorder_read(ctx: WebContext, call: Call) -> Any:
    since, until = _range(call)
    rows = await _recorder(ctx, call, "read", recorder=call.params["number"], since_ts=since, until_ts=until,
                           limit=call.params["limit"])
    return finite({"recorder": call.params["number"], "records": rows})


async def report(ctx: WebContext, call: Call) -> Any:
    """The week's EN 50160 or IEEE 519 report, computed by the functions behind ``meter report``."""
    p = call.params
    start, end = week_bounds(time.time(), p["week"])
    key = (p["standard"], start, p["isc_il"], p["il"], p["bus_kv"])
    async with _report_lock:
        cached = _report_cache.get(key)
        if cached is not None and (p["week"] == "previous" or time.monotonic() - cached[0] < REPORT_CACHE_S):
            return cached[1]
        answer = finite({"standard": p["standard"], "week": p["week"], "start": start, "end": end,
                         "report": await _compute(ctx, p, start, end)})
        if len(_report_cache) >= REPORT_CACHE_SIZE:
            _report_cache.pop(next(iter(_report_cache)))
        _report_cache[key] = (time.monotonic(), answer)
        return answer


async def _compute(ctx: WebContext, p: dict[str, Any], start: float, end: float) -> dict[str, Any]:
    inst = reports.installation(ctx.config)
    try:
        if p["standard"] == "en50160":
            out, _ = await asyncio.to_thread(reports.en50160_week, inst, start, end)
        else:
            out, _ = await asyncio.to_thread(reports.ieee519_week, inst, start, end, p["isc_il"], p["il"],
                                             p["bus_kv"])
    except ConfigError as exc:
        raise ApiError(400, str(exc).replace("--isc-il", "isc_il").replace("--il", "il")
                       .replace("--bus-kv", "bus_kv")) from None
    except StorageError as exc:
        raise ApiError(503, str(exc)) from None
    out.pop("source", None)       # a path on the meter says nothing to a browser
    return out


async def export(ctx: WebContext, call: Call) -> Any:
    """Events, captures and 10-min values of a time range as a PQDIF file (``meter pq export``)."""
    since, until = _range(call)
    until = time.time() if until is None else until
    parts = tuple(p for p in call.params["parts"].split(",") if p)
    async with _export_lock:
        try:
            data = await asyncio.to_thread(export_from_config, ctx.config, since or 0.0, until, parts, ctx.data_dir)
        except ConfigError as exc:
            raise ApiError(400, str(exc)) from None
        except StorageError as exc:
            raise ApiError(503, str(exc)) from None
    name = f"{ctx.config.meter.name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(until))}.pqd"
    return Response(data, media_type="application/octet-stream",
                    headers={"cache-control": "no-store", "content-disposition": f'attachment; filename="{name}"'})


async def trend(ctx: WebContext, call: Call) -> Any:
    """Trend and forecast of one target (``meter pq trend``)."""
    try:
        out = await asyncio.to_thread(trend_of, ctx.data_dir, call.params["target"], call.params["interval"])
    except ConfigError as exc:
        raise ApiError(400, str(exc)) from None
    except StorageError as exc:
        raise ApiError(503, str(exc)) from None
    return finite(out)
