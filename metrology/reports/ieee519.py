"""IEEE 519-2014 harmonic compliance at the point of common coupling, over one observation week.

Voltage limits (Table 1) depend on the bus voltage at the PCC; current limits (Tables 2-4, % of I_L, the
maximum demand load current) on the bus voltage and the short-circuit ratio ISC/IL. Even harmonics are held
to 25 % of the odd limits of their range. The assessment (clause 5) uses percentiles of the very-short
(3-s) and short (10-min) aggregates:

- voltage: the weekly 95th percentile of the 10-min values within the limit, and the 99th percentile of
  each day's 3-s values within 1.5 times it;
- current: the weekly 95th percentile of the 10-min values within the limit, their weekly 99th percentile
  within 1.5 times it, and the 99th percentile of each day's 3-s values within 2 times it.

Harmonic orders 2-50. THD and TDD are taken from the stored harmonic magnitudes (orders 2-50); ``thd``/``tdd``
values stand in where no magnitudes are stored. Records flagged by a dip, swell or interruption or cut by
lost samples are left out, as for EN 50160. 3-s records are consumed one day at a time (only each day's 99th
percentiles are kept), so a week of them need not fit in memory when ``records`` is a generator in time order.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Iterable

import numpy as np

from metrology.reports.common import DAY_S, Record, nan_to_none, overall, stack, usable
from metrology.reports.en50160 import ORDERS, SIGNALS

STANDARD = "IEEE 519-2014"
MAX_ORDER = 50
V_DAILY_3S_FACTOR = 1.5        # clause 5.1: daily 99th percentile of very-short values < 1.5 x limit
I_DAILY_3S_FACTOR = 2.0        # clause 5.2: daily 99th percentile of very-short values < 2.0 x limit
I_WEEKLY_P99_FACTOR = 1.5      # clause 5.2: weekly 99th percentile of short values < 1.5 x limit
EVEN_FRACTION = 0.25           # even harmonics: 25 % of the odd limits

# Table 1: (bus voltage up to, kV) -> (individual harmonic %, THD %)
VOLTAGE_LIMITS: tuple[tuple[float, float, float], ...] = (
    (1.0, 5.0, 8.0), (69.0, 3.0, 5.0), (161.0, 1.5, 2.5), (math.inf, 1.0, 1.5),
)
# Tables 2-4: bus voltage up to (kV) -> rows (ISC/IL below, limits for 3<=h<11, 11<=h<17, 17<=h<23,
# 23<=h<35, 35<=h<=50, TDD), % of I_L
ORDER_RANGES = ((2, 11), (11, 17), (17, 23), (23, 35), (35, 51))
CURRENT_LIMITS: tuple[tuple[float, tuple[tuple[float, tuple[float, ...]], ...]], ...] = (
    (69.0, ((20, (4.0, 2.0, 1.5, 0.6, 0.3, 5.0)), (50, (7.0, 3.5, 2.5, 1.0, 0.5, 8.0)),
            (100, (10.0, 4.5, 4.0, 1.5, 0.7, 12.0)), (1000, (12.0, 5.5, 5.0, 2.0, 1.0, 15.0)),
            (math.inf, (15.0, 7.0, 6.0, 2.5, 1.4, 20.0)))),
    (161.0, ((20, (2.0, 1.0, 0.75, 0.3, 0.15, 2.5)), (50, (3.5, 1.75, 1.25, 0.5, 0.25, 4.0)),
             (100, (5.0, 2.25, 2.0, 0.75, 0.35, 6.0)), (1000, (6.0, 2.75, 2.5, 1.0, 0.5, 7.5)),
             (math.inf, (7.5, 3.5, 3.0, 1.25, 0.7, 10.0)))),
    (math.inf, ((25, (1.0, 0.5, 0.38, 0.15, 0.1, 1.5)), (50, (2.0, 1.0, 0.75, 0.3, 0.15, 2.5)),
                (math.inf, (3.0, 1.5, 1.15, 0.45, 0.22, 3.75)))),
)


def voltage_limits(bus_kv: float) -> tuple[float, float]:
    """(individual %, THD %) for the bus voltage (kV, line-to-line) at the PCC (Table 1)."""
    return next((ind, thd) for top, ind, thd in VOLTAGE_LIMITS if bus_kv <= top)


def current_limits(bus_kv: float, isc_il: float) -> tuple[np.ndarray, float]:
    """(limit per order 0..50 in % of I_L, TDD limit %) for the bus voltage and ISC/IL (Tables 2-4)."""
    if not isc_il > 0:
        raise ValueError(f"ISC/IL must be positive, got {isc_il}")
    rows = next(rows for top, rows in CURRENT_LIMITS if bus_kv <= top)
    limits = next(lim for below, lim in rows if isc_il < below)
    per_order = np.full(MAX_ORDER + 1, np.nan)
    for (lo, hi), lim in zip(ORDER_RANGES, limits):
        for h in range(lo, hi):
            per_order[h] = lim * (EVEN_FRACTION if h % 2 == 0 else 1.0)
    return per_order, limits[-1]


class _Quantities:
    """Per record: voltage harmonics and THD in % of the fundamental, current harmonics and TDD in % of I_L."""

    def __init__(self, v_signals: slice, il_a: float) -> None:
        self.v_signals, self.il_a = v_signals, il_a

    def of(self, records: list[Record]) -> dict[str, np.ndarray]:
        h = stack(records, "h_mag", (SIGNALS, ORDERS))
        hv = h[:, self.v_signals, :MAX_ORDER + 1]
        hi = h[:, 6:9, :MAX_ORDER + 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            v_pct = np.where(hv[:, :, 1:2] > 0, 100.0 * hv / hv[:, :, 1:2], np.nan)
        i_pct = 100.0 * hi / self.il_a
        thd = np.sqrt(np.sum(v_pct[:, :, 2:] ** 2, axis=2))
        tdd = np.sqrt(np.sum(i_pct[:, :, 2:] ** 2, axis=2))
        if not np.isfinite(thd).any():
            thd = stack(records, "thd", (SIGNALS,))[:, self.v_signals]
        if not np.isfinite(tdd).any():
            tdd = stack(records, "tdd", (SIGNALS,))[:, 6:9]
        return {"v_h": v_pct, "i_h": i_pct, "thd": thd, "tdd": tdd}


def _pct(x: np.ndarray, q: float) -> np.ndarray:
    """q-th percentile over the first axis, NaN where a column has no value."""
    if x.shape[0] == 0:
        return np.full(x.shape[1:], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # all-NaN columns (absent phases) give NaN
        return np.nanpercentile(x, q, axis=0)


def _daily_p99(three_s: Iterable[Record], start: float, end: float,
               q: _Quantities) -> tuple[dict[str, np.ndarray], int]:
    """Highest daily 99th percentile of the 3-s values per quantity, and the number of days with 3-s values
    (one day of records held at a time)."""
    worst: dict[str, np.ndarray] = {}
    day: list[Record] = []
    day_key: int | None = None
    days = 0

    def close() -> None:
        nonlocal days
        if day:
            days += 1
            for name, x in q.of(day).items():
                p = _pct(x, 99.0)
                worst[name] = np.fmax(worst[name], p) if name in worst else p

    for r in three_s:
        if not usable(r, "3s", start, end):
            continue
        key = int(float(r["ts"]) // DAY_S)
        if key != day_key:
            close()
            day, day_key = [], key
        day.append(r)
    close()
    return worst, days


def _check(value: float, limit: float) -> bool | None:
    return None if not math.isfinite(value) else bool(value <= limit)


def report(records: Iterable[Record], start: float, end: float, bus_kv: float, isc_il: float, il_a: float,
           voltage: str = "v_ln") -> dict[str, Any]:
    """IEEE 519 assessment of the week (start, end]. ``bus_kv``: line-to-line voltage at the PCC; ``isc_il``:
    short-circuit ratio; ``il_a``: maximum demand load current (A, primary); ``voltage``: "v_ln" or "v_ll"
    harmonics (phase-to-neutral or phase-to-phase signals)."""
    if not il_a > 0:
        raise ValueError(f"I_L must be positive, got {il_a}")
    v_ind, v_thd = voltage_limits(bus_kv)
    i_lim, tdd_lim = current_limits(bus_kv, isc_il)
    q = _Quantities(slice(0, 3) if voltage == "v_ln" else slice(3, 6), il_a)
    ten: list[Record] = []

    def split(rs: Iterable[Record]) -> Iterable[Record]:
        for r in rs:
            if r.get("kind") == "3s":
                yield r
            elif usable(r, "10min", start, end):
                ten.append(r)

    daily, days = _daily_p99(split(records), start, end, q)
    weekly = q.of(ten)

    def entry(name: str, key: str, limit: float, order: int | None, current: bool) -> dict:
        sel = (lambda x: x[..., order]) if order is not None else (lambda x: x)
        p95 = float(np.nanmax(_pct(sel(weekly[key]), 95.0))) if ten else math.nan
        p99 = float(np.nanmax(_pct(sel(weekly[key]), 99.0))) if ten else math.nan
        d99 = float(np.nanmax(sel(daily[key]))) if key in daily and np.isfinite(sel(daily[key])).any() else math.nan
        factor = I_DAILY_3S_FACTOR if current else V_DAILY_3S_FACTOR
        checks = [_check(p95, limit), _check(d99, factor * limit)]
        out = {"quantity": name, "limit_pct": limit, "p95_10min": nan_to_none(p95),
               "p99_3s_worst_day": nan_to_none(d99), "p99_3s_limit_pct": round(factor * limit, 4)}
        if current:
            checks.insert(1, _check(p99, I_WEEKLY_P99_FACTOR * limit))
            out.update(p99_10min=nan_to_none(p99), p99_10min_limit_pct=round(I_WEEKLY_P99_FACTOR * limit, 4))
        if order is not None:
            out["order"] = order
        # the 10-min percentile decides; a missing 3-s percentile (none stored) does not fail the week
        out["compliant"] = None if checks[0] is None else overall(c for c in checks if c is not None)
        return out

    with np.errstate(all="ignore"):
        voltage_entries = [entry("voltage THD", "thd", v_thd, None, False)]
        voltage_entries += [entry(f"voltage harmonic {h}", "v_h", v_ind, h, False) for h in range(2, MAX_ORDER + 1)]
        current_entries = [entry("current TDD", "tdd", tdd_lim, None, True)]
        current_entries += [entry(f"current harmonic {h}", "i_h", float(i_lim[h]), h, True)
                            for h in range(2, MAX_ORDER + 1)]
    return {
        "standard": STANDARD,
        "period": {"start": start, "end": end},
        "pcc": {"bus_kv": bus_kv, "isc_il": isc_il, "il_a": il_a, "voltage_values": voltage},
        "limits": {"voltage_individual_pct": v_ind, "voltage_thd_pct": v_thd, "current_tdd_pct": tdd_lim},
        "records": {"10min_used": len(ten), "3s_days": days},
        "voltage": voltage_entries,
        "current": current_entries,
        "compliant": overall([e["compliant"] for e in voltage_entries + current_entries]),
    }


def series(records: Iterable[Record], start: float, end: float, il_a: float,
           voltage: str = "v_ln") -> dict[str, np.ndarray]:
    """The week's usable 10-min voltage THD and current TDD (%, per phase) for a plot."""
    ten = [r for r in records if usable(r, "10min", start, end)]
    q = _Quantities(slice(0, 3) if voltage == "v_ln" else slice(3, 6), il_a).of(ten)
    return {"ts": np.array([float(r["ts"]) for r in ten]), "thd": q["thd"], "tdd": q["tdd"]}
