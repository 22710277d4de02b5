"""``meter replay RECORDING.cfg``: a COMTRADE recording through the meter's own metrology pipeline.

The recording is read by ``hal.comtrade`` (ASCII and binary .dat, IEEE C37.111-1999/2013), mapped
to the meter's inputs (IA VA IB VB IC VC IN, secondary values), brought to the 32 kSPS of the
ADE9000 waveform stream (``ComtradeSource``'s cubic interpolation when the recording has another
rate) and fed in blocks to ``metrology.pipeline.Pipeline``: the class the metrology service runs.
One JSON object per line and per interval is printed, with ``t`` (seconds from the start of the
recording to the start of the interval) and the keys of the point map (``metrology.publish``) in SI
units at the primary side; energy keys are cumulative since the start of the recording.

On stderr: which channel feeds which input (``--channel-map`` chooses, and must when a recording has
several candidates for an input), what the reader assumed, and a line frequency that disagrees with the
signal (the signal's is followed). A recording that cannot be read, is ambiguous or too short for one
interval is refused with exit status 1 and the file, line and field named.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Iterator, Sequence

import numpy as np

from hal.comtrade import ORDER, Comtrade, ComtradeSource, Mapping, parse_channel_map, read_comtrade
from hal.errors import ComtradeError
from metrology.events import PqEvent
from metrology.frequency import dominant_frequency
from metrology.pqpublish import SUFFIX as AGGREGATED
from metrology.pqpublish import aggregate_points
from metrology.publish import publish
from metrology.signalling import check_frequencies
from metrology.settings import SAMPLE_RATE_HZ, SYSTEM_TYPES, MetrologySettings

INTERVALS = {"cycle10": "windows", "3s": "three_s", "1s": "seconds", "10min": "ten_min"}
BLOCK_FRAMES = 4096


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="run a COMTRADE recording through the metrology pipeline (JSON lines)")
    p.add_argument("recording", help="the .cfg file of the recording (its .dat beside it)")
    p.add_argument("--interval", choices=tuple(INTERVALS), default="1s",
                   help="which values to print: 10/12-cycle, 150/180-cycle (3 s), 1 s or 10 min (default 1s)")
    p.add_argument("--system-type", choices=SYSTEM_TYPES, default="4W-WYE")
    p.add_argument("--nominal-voltage", type=float, default=None,
                   help="Udin, primary V (default: from the recording's first cycles)")
    p.add_argument("--nominal-current", type=float, default=5.0, help="In, primary A (default 5)")
    p.add_argument("--nominal-frequency", type=float, choices=(50.0, 60.0), default=None,
                   help="50 or 60 Hz (default: the recording's line frequency)")
    p.add_argument("--secondary", action="store_true",
                   help="report secondary values (do not apply the recording's PT/CT ratios)")
    p.add_argument("--channel-map", default="", metavar="VA=NAME,IA=NAME,...",
                   help="which channel feeds which input (IA VA IB VB IC VC IN), by name or number (An, from 1); "
                        "INPUT=- for none; inputs not given are found by name, ph and unit")
    p.add_argument("--signalling-frequencies", default="", metavar="HZ,...",
                   help="ripple-control frequencies whose mains signalling voltage is measured (msv_* values), as "
                        "[pq] signalling_frequencies configures the meter (the same limits)")
    p.add_argument("--events", action="store_true",
                   help="print the PQ events found (dips, swells, interruptions, RVC, transients) instead of the "
                        "intervals: kind, phases, start, duration, residual or extreme, ITI(CBEMA) and SEMI F47 "
                        "class, direction")
    p.set_defaults(func=_run)


def signalling_frequencies(args: argparse.Namespace) -> tuple[float, ...]:
    text = getattr(args, "signalling_frequencies", "") or ""
    try:
        freqs = tuple(float(f) for f in text.split(",") if f.strip())
    except ValueError:
        raise ComtradeError(f"--signalling-frequencies {text!r}: give frequencies in Hz separated by commas, "
                            "e.g. 316.67,1050") from None
    try:
        check_frequencies(freqs)
    except ValueError as exc:
        raise ComtradeError(f"--signalling-frequencies: {exc}") from None
    return freqs


def _ratio(rec, mapping: Mapping | None, kind: str) -> float:
    """The PT (kind V) or CT (kind I) ratio of the first channel mapped to such an input."""
    if mapping is None:
        chosen = [ch for ch in rec.analogs if ch.unit.strip().lower().endswith("v" if kind == "V" else "a")]
    else:
        chosen = [rec.analogs[k] for name, k in zip(ORDER, mapping.index) if k is not None and name[0] == kind]
    for ch in chosen:
        if ch.primary and ch.secondary:
            return float(ch.primary / ch.secondary)
    return 1.0


def _nearest_nominal(hz: float) -> float:
    return 60.0 if abs(hz - 60.0) < abs(hz - 50.0) else 50.0


FREQUENCY_WINDOW_S = 1.0      # how much of the recording the line frequency is measured on


def measured_frequency(source: ComtradeSource) -> float | None:
    """The fundamental of the first voltage input that is recorded (else the first current), from the first
    second of the recording at the meter's rate."""
    n = int(min(source.duration_s, FREQUENCY_WINDOW_S) * SAMPLE_RATE_HZ) + 1
    x = source.sample(np.arange(n) / SAMPLE_RATE_HZ)
    for col in (1, 3, 5, 0, 2, 4):
        if source.map.index[col] is not None and np.any(x[:, col]):
            return dominant_frequency(x[:, col], SAMPLE_RATE_HZ)
    return None


def line_frequency(rec, source: ComtradeSource, args: argparse.Namespace, path: str, err: IO[str]) -> float:
    """50 or 60 Hz: the option, else the signal's, else the .cfg's; a disagreement is said on stderr."""
    declared = _nearest_nominal(rec.line_hz) if rec.line_hz > 0 else None
    measured = measured_frequency(source)
    signal = _nearest_nominal(measured) if measured is not None else None
    if args.nominal_frequency:
        if signal is not None and signal != args.nominal_frequency:
            print(f"meter replay: warning: {path}: the signal's fundamental is {measured:.2f} Hz, replayed with "
                  f"--nominal-frequency {args.nominal_frequency:g} as asked", file=err)
        return float(args.nominal_frequency)
    if signal is None:
        if declared is None:
            raise ComtradeError(f"comtrade {path}: line {rec.line_hz_line}, field lf: {rec.line_hz:g} Hz and no "
                                "fundamental in the signal; give --nominal-frequency 50 or 60")
        return declared
    if declared is not None and declared != signal:
        print(f"meter replay: warning: {path}: line {rec.line_hz_line}, field lf says {rec.line_hz:g} Hz but the "
              f"signal's fundamental is {measured:.2f} Hz; replayed as {signal:g} Hz", file=err)
    return signal


def settings_for(rec, args: argparse.Namespace, first: np.ndarray, line: float | None = None,
                 mapping: Mapping | None = None) -> MetrologySettings:
    line = line or args.nominal_frequency or _nearest_nominal(rec.line_hz)
    pt = 1.0 if args.secondary else _ratio(rec, mapping, "V")
    ct = 1.0 if args.secondary else _ratio(rec, mapping, "I")
    udin = args.nominal_voltage
    if udin is None:
        v = first[:, [1, 3, 5]]
        rms = float(np.sqrt(np.mean(v * v, axis=0)).max()) * pt
        udin = rms if rms > 1.0 else 230.0
    return MetrologySettings(system_type=args.system_type, nominal_voltage=udin, nominal_current=args.nominal_current,
                             nominal_frequency=line, signalling_hz=signalling_frequencies(args),
                             pt_primary=max(pt, 1.0), pt_secondary=max(1.0 / pt, 1.0) if pt < 1 else 1.0,
                             ct_primary=max(ct, 1.0), ct_secondary=max(1.0 / ct, 1.0) if ct < 1 else 1.0)


def runs(total: int, gaps: list[tuple[float, float]]) -> Iterator[tuple[int, int]]:
    """[first, end) frame ranges at the ADE9000 rate outside the recording's gaps (each gap exclusive)."""
    at = 0
    for lo, hi in sorted(gaps):
        end = min(total, int(math.floor(lo * SAMPLE_RATE_HZ)) + 1)      # frames at or before lo
        if end > at:
            yield at, end
        at = max(at, int(math.ceil(hi * SAMPLE_RATE_HZ)))               # frames from hi on
    if total > at:
        yield at, total


def blocks(source: ComtradeSource, rate: float,
           gaps: Sequence[tuple[float, float]] = ()) -> Iterator[tuple[int, np.ndarray]]:
    """(first index, (n, 7) samples) at the ADE9000 rate over the recording; frames inside a gap are not fed,
    so the next block's index jumps and the pipeline treats the stretch as lost samples."""
    total = int(math.floor(source.duration_s * SAMPLE_RATE_HZ)) + 1
    native = source.uniform and abs(rate - SAMPLE_RATE_HZ) < 1e-6
    for start, end in runs(total, list(gaps)):
        for first in range(start, end, BLOCK_FRAMES):
            n = min(BLOCK_FRAMES, end - first)
            if native:
                yield first, source.values[first:first + n]
            else:
                yield first, source.sample((first + np.arange(n)) / SAMPLE_RATE_HZ)


def open_recording(path: str, args: argparse.Namespace, err: IO[str]) -> tuple[Comtrade, ComtradeSource]:
    """The recording read and mapped, what the reader assumed and the mapping said on ``err``."""
    channel_map = parse_channel_map(getattr(args, "channel_map", "") or "")
    if not Path(path).exists():
        raise ComtradeError(f"{path}: no such file")
    rec = read_comtrade(path)
    for note in rec.warnings:
        print(f"meter replay: warning: {note}", file=err)
    source = ComtradeSource(rec, channel_map=channel_map)
    print(f"meter replay: {path}: {source.map.describe(rec)}", file=err)
    if source.duration_s <= 0:
        raise ComtradeError(f"{path}: the recording holds {len(rec.times_s)} sample(s); nothing to replay")
    return rec, source


def replay(path: str, args: argparse.Namespace, out: IO[str], err: IO[str] | None = None) -> int:
    # imported here: the pipeline pulls in scipy (~1.5 s), which every other `meter` command would pay for
    from metrology.pipeline import Pipeline

    err = err or sys.stderr
    rec, source = open_recording(path, args, err)
    line = line_frequency(rec, source, args, path, err)
    stream = blocks(source, rec.sample_rate_hz, rec.gaps)
    first_index, first = next(stream)
    settings = settings_for(rec, args, first, line, source.map)
    pipeline = Pipeline(settings)
    t0_ns = int(rec.start.timestamp() * 1e9) if rec.start is not None else 0
    present = pipeline.wiring.signal_present()
    if not source.mapping[6]:
        present[9] = False        # no IN in the recording: the measured neutral current is not available
    attr = INTERVALS[args.interval]
    lines = 0
    events = bool(getattr(args, "events", False))

    def emit(result) -> None:
        nonlocal lines
        if events:
            for ev in result.events:
                if isinstance(ev, PqEvent):
                    out.write(json.dumps(event_row(ev, t0_ns, rec.start is not None), allow_nan=False) + "\n")
                    lines += 1
            return
        for item in getattr(result, attr):
            out.write(json.dumps(interval_row(item, pipeline, present, t0_ns), allow_nan=False) + "\n")
            lines += 1

    emit(pipeline.feed_values(first, first_index, t0_ns))
    for index, x in stream:
        emit(pipeline.feed_values(x, index, t0_ns + round(index * 1e9 / SAMPLE_RATE_HZ)))
    if events:
        print(f"meter replay: {path}: {lines} PQ event(s) in {source.duration_s:.3f} s", file=err)
        return 0
    if lines == 0:
        raise ComtradeError(f"{path}: the recording ({source.duration_s:.3f} s) is too short for one {args.interval} "
                            "interval")
    return 0


def interval_row(item, pipeline, present: np.ndarray, t0_ns: int) -> dict[str, object]:
    """One interval as the live meter publishes it: the point map's keys, and for a 3-s or 10-min interval the
    PQ aggregates (``v_an_3s``, ``msv_a_3s``, ...)."""
    values = dict(item.values)
    values.setdefault("freq_10s", np.array([pipeline.latest_frequency_10s]))
    row: dict[str, object] = {"t": round(max(item.start_ns - t0_ns, 0) / 1e9, 6)}
    for key, value in publish(values, pipeline.registers.total, present).items():
        row[key] = _json_value(value)
    if getattr(item, "kind", None) in AGGREGATED:
        for key, value in aggregate_points(item).items():
            row[key] = _json_value(value)
    row["flagged"] = item.flagged
    return row


def event_row(ev: PqEvent, t0_ns: int, dated: bool) -> dict[str, object]:
    """One PQ event as a JSON object: ``t`` from the start of the recording, ``start`` in UTC when the .cfg
    dates the recording, the residual (dips, interruptions) or the extreme (swells) in % of Udin, and the
    statistics during the event (``stats``: min/max/avg of V, I, THD, PF, f; ``metrology.evstats``)."""
    row: dict[str, object] = {"kind": ev.kind, "t": round((ev.start_ns - t0_ns) / 1e9, 6)}
    if dated:
        row["start"] = datetime.fromtimestamp(ev.start_ns / 1e9, timezone.utc).isoformat(timespec="microseconds")
    row["duration_s"] = round(ev.duration_s, 6)
    row["phases"] = list(ev.channels)
    row["initiator"] = ev.initiator
    key = "residual_pct" if ev.kind in ("sag", "interruption") else "extreme_pct"
    fields: tuple[tuple[str, object], ...] = (
        (key, ev.extreme_pct), ("extreme_v", np.asarray(ev.extreme_v, dtype=float)), ("itic", ev.itic),
        ("semi_f47", ev.semi_f47), ("direction", ev.direction), ("direction_confidence", ev.direction_confidence),
        ("delta_umax_pct", ev.delta_umax_pct), ("delta_uss_pct", ev.delta_uss_pct), ("peak_v", ev.peak_v),
        ("stats", ev.stats))
    for name, value in fields:
        shown = value if isinstance(value, (str, dict)) else _json_value(value)
        if shown not in (None, "", []):            # what does not apply to this kind of event is left out
            row[name] = shown
    return row


def _json_value(value: object) -> object:
    if isinstance(value, np.ndarray):
        return [None if not math.isfinite(v) else round(float(v), 9) for v in value]
    v = float(value)  # type: ignore[arg-type]
    return None if not math.isfinite(v) else round(v, 9)


def _run(args: argparse.Namespace) -> int:
    return replay(args.recording, args, sys.stdout)
