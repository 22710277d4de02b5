"""Trending and forecasting (ION7400 "Trending and forecasting"): a quantity's values per hour (the last 24),
day (the last 31), week (the last 8, weeks starting Monday 00:00 UTC) or month (the last 12, calendar months
UTC), each interval's mean, minimum and maximum of the 10-min values in it, and a forecast of the present and the
next interval.

The forecast is the least-squares straight line through the means of the complete intervals before the present
one, taken one and two intervals on; as on the ION7400 it needs at least two such intervals (else null). Only
what the recorder still holds can be trended: its 10-min depth (``[pq] aggregate_depth_10min``, four weeks by
default) bounds the weeks and months.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Any, Iterable

import numpy as np

from metrology.reports.common import DAY_S, WEEK_S, week_bounds

INTERVALS = {"hourly": 24, "daily": 31, "weekly": 8, "monthly": 12}     # intervals kept, as the ION7400


def _month_start(t: float, back: int = 0) -> float:
    d = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    y, m = divmod(d.year * 12 + d.month - 1 - back, 12)
    return dt.datetime(y, m + 1, 1, tzinfo=dt.timezone.utc).timestamp()


def bounds(now: float, interval: str) -> list[tuple[float, float]]:
    """(start, end) of the ``INTERVALS[interval]`` intervals up to the present one (last), oldest first."""
    n = INTERVALS[interval]
    if interval == "monthly":
        return [(_month_start(now, k), _month_start(now, k - 1)) for k in range(n - 1, -1, -1)]
    if interval == "weekly":
        start = week_bounds(now)[0]
        return [(start - k * WEEK_S, start - (k - 1) * WEEK_S) for k in range(n - 1, -1, -1)]
    step = 3600.0 if interval == "hourly" else float(DAY_S)
    start = math.floor(now / step) * step
    return [(start - k * step, start - (k - 1) * step) for k in range(n - 1, -1, -1)]


def trend(samples: Iterable[tuple[float, float]], now: float, interval: str) -> dict[str, Any]:
    """``samples``: (end of the 10-min interval, value); NaN values are left out. The answer: ``intervals`` (start,
    end, mean, min, max, count; null statistics where none), ``forecast`` for the present and the next interval
    (null below two complete intervals with values), ``slope`` per interval."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    pts = np.array([(t, v) for t, v in samples if math.isfinite(v)], dtype=np.float64).reshape(-1, 2)
    rows: list[dict[str, Any]] = []
    for lo, hi in bounds(now, interval):
        inside = pts[(pts[:, 0] > lo) & (pts[:, 0] <= hi), 1]
        stats = ((float(inside.mean()), float(inside.min()), float(inside.max())) if inside.size
                 else (None, None, None))
        rows.append({"start": lo, "end": hi, "mean": stats[0], "min": stats[1], "max": stats[2],
                     "count": int(inside.size)})
    past = [(k, r["mean"]) for k, r in enumerate(rows[:-1]) if r["mean"] is not None]
    forecast: dict[str, float | None] = {"present": None, "next": None}
    slope = None
    if len(past) >= 2:
        x, y = np.array([p[0] for p in past], dtype=np.float64), np.array([p[1] for p in past])
        slope, icpt = np.polyfit(x, y, 1)
        n = len(rows) - 1
        forecast = {"present": float(icpt + slope * n), "next": float(icpt + slope * (n + 1))}
        slope = float(slope)
    nxt = bounds(bounds(now, interval)[-1][1] + 1.0, interval)[-1]       # the interval after the present one
    return {"interval": interval, "intervals": rows, "forecast": forecast, "slope": slope,
            "next": {"start": nxt[0], "end": nxt[1]}}
