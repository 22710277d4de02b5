"""From PQ intervals and events to the published keys of ``firmware/points/pq.toml``.

The 3-s (150/180-cycle), 10-min and 2-h values each publish the same quantities under a suffix (``v_an_3s``,
``v_an_10min``, ``v_an_2h``) with their IEC 61000-4-30 flag (a dip, swell or interruption in the interval), the
gap flag (samples lost) and the interval's end time; the mains signalling voltages as arrays of 4 (one per
configured frequency). ``pq_points`` is the one list of these names; the point
map declares each once with its unit and Modbus address.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from metrology.events import KINDS
from metrology.intervals import Interval
from metrology.signalling import MAX_FREQUENCIES as MSV_SIZE

SUFFIX = {"3s": "3s", "10min": "10min", "2h": "2h"}
COUNTED = KINDS

_Get = Callable[[dict[str, np.ndarray]], float]


def _at(key: str, k: int) -> _Get:
    return lambda v: float(v[key][k]) if key in v and v[key].size > k else math.nan


# (name, getter) of the quantities every aggregation publishes; thd is indexed by signal (va vb vc vab ...)
AGGREGATE_VALUES: tuple[tuple[str, _Get], ...] = (
    ("v_an", _at("v_ln", 0)), ("v_bn", _at("v_ln", 1)), ("v_cn", _at("v_ln", 2)),
    ("v_ab", _at("v_ll", 0)), ("v_bc", _at("v_ll", 1)), ("v_ca", _at("v_ll", 2)),
    ("i_a", _at("i", 0)), ("i_b", _at("i", 1)), ("i_c", _at("i", 2)),
    ("frequency", _at("freq", 0)), ("v_unbal", _at("v_unbal", 0)),
    ("thd_va", _at("thd", 0)), ("thd_vb", _at("thd", 1)), ("thd_vc", _at("thd", 2)),
    *((f"{key}_{ph}", _at(key, k)) for key in ("under_dev", "over_dev") for k, ph in enumerate("abc")),
)


def aggregate_points(item: Interval) -> dict[str, float | np.ndarray]:
    """The published keys of one 3-s, 10-min or 2-h interval."""
    s = SUFFIX[item.kind]
    out: dict[str, float | np.ndarray] = {f"{name}_{s}": get(item.values) for name, get in AGGREGATE_VALUES}
    # mains signalling voltage per phase, one entry per configured frequency, NaN beyond them
    msv = np.full((3, MSV_SIZE), np.nan)
    if "msv" in item.values:
        msv[:, :item.values["msv"].shape[1]] = item.values["msv"]
    for k, ph in enumerate("abc"):
        out[f"msv_{ph}_{s}"] = msv[k]
    out[f"pq_flagged_{s}"] = 1.0 if item.flagged else 0.0
    out[f"pq_gap_{s}"] = 1.0 if item.gap else 0.0
    out[f"pq_end_{s}"] = item.end_ns / 1e9
    return out


def counter_points(counts: dict[str, int], active: bool, last: Any = None) -> dict[str, float]:
    """Disturbance counters, the event-in-progress flag and the last dip/swell/interruption."""
    out = {f"pq_{k}_count": float(counts.get(k, 0)) for k in COUNTED}
    out["pq_event_active"] = 1.0 if active else 0.0
    if last is not None:
        out["pq_last_extreme_pct"] = float(last.extreme_pct)
        out["pq_last_duration_s"] = float(last.duration_s)
    return out
