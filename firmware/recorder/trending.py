"""Trending and forecasting of the recorder's 10-min values (``metrology.reports.trend``): what ``meter pq trend``
and ``GET /api/pq/trend`` answer. The targets are the ION7400's: total active power (its demand), frequency, the
line voltages and their average, the phase currents and their average.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from firmware.recorder.store import read_aggregates
from hal.errors import ConfigError
from metrology.reports.trend import INTERVALS, bounds, trend

# target -> (10-min value name, element indices averaged), unit
TARGETS: dict[str, tuple[str, tuple[int, ...], str]] = {
    "p_total": ("p", (3,), "W"), "frequency": ("freq", (0,), "Hz"),
    "v_ab": ("v_ll", (0,), "V"), "v_bc": ("v_ll", (1,), "V"), "v_ca": ("v_ll", (2,), "V"),
    "v_ll_avg": ("v_ll", (0, 1, 2), "V"),
    "i_a": ("i", (0,), "A"), "i_b": ("i", (1,), "A"), "i_c": ("i", (2,), "A"), "i_avg": ("i", (0, 1, 2), "A"),
}


def trend_of(data_dir: str | Path, target: str, interval: str, now: float | None = None) -> dict[str, Any]:
    if target not in TARGETS:
        raise ConfigError(f"trend: target {target!r} is not one of {', '.join(TARGETS)}")
    if interval not in INTERVALS:
        raise ConfigError(f"trend: interval {interval!r} is not one of {', '.join(INTERVALS)}")
    now = time.time() if now is None else now
    name, elements, unit = TARGETS[target]
    since = bounds(now, interval)[0][0]
    samples = []
    for r in read_aggregates(data_dir, "10min", since, None):
        raw = r["values"].get(name)
        if raw is None:
            continue
        arr = np.asarray(raw, dtype=np.float64).reshape(-1)
        if max(elements) < arr.size:
            samples.append((float(r["ts"]), float(np.mean(arr[list(elements)]))))
    return {"target": target, "unit": unit, **trend(samples, now, interval), "targets": list(TARGETS),
            "interval_names": list(INTERVALS)}
