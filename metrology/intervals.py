"""Measurement intervals: values of a run of cycles, and the IEC 61000-4-30 aggregation above them.

``cycles_values`` builds the named values of one interval from its cycles (10/12-cycle windows
weigh cycles equally, as IEC 61000-4-30 5.2 asks; 1-s revenue values weigh them by duration, so
that W times duration is the energy). ``aggregate`` combines intervals: RMS-type quantities as
the square root of the mean of squares (IEC 61000-4-30 4.5.2), powers and frequency as means,
crest factor as the maximum, angles as the latest value; power factors are recomputed from the
aggregated powers. ``ClockAggregator`` closes clock-aligned intervals (10 min, 2 h);
``CountAggregator`` makes 150/180-cycle values from 15 windows, resynchronised at each 10-min tick.

Value names (arrays are indexed a, b, c[, total]; harmonic arrays by signal, then order):
v_ln v_ll i (3), i_n i_res, p q s s_vect p1 pf dpf quadrant (4), freq, h_mag h_inter h_angle
(10, 64), thd thd_rms thd_odd thd_even tdd k_factor crest angle (10), v_seq i_seq (3 magnitudes:
zero, positive, negative), v_u0 v_u2 i_u0 i_u2 v_unbal i_unbal (%).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from metrology.cycle import CycleMeasures
from metrology.harmonics import HarmonicValues, max_deviation_unbalance, sequence, unbalance
from metrology.power import compute_power, quadrant, signed_pf
from metrology.systems import I_N, I_PH, I_RES, V_LL, V_LN

RMS_KEYS = ("v_ln", "v_ll", "i", "i_n", "i_res", "h_mag", "h_inter", "thd", "thd_rms", "thd_odd",
            "thd_even", "tdd", "v_seq", "i_seq", "v_u0", "v_u2", "i_u0", "i_u2", "v_unbal", "v_ll_unbal", "i_unbal")
MEAN_KEYS = ("p", "q", "s", "s_vect", "p1", "freq", "k_factor")
MAX_KEYS = ("crest",)
LAST_KEYS = ("h_angle", "angle")

NS_PER_S = 1_000_000_000
TEN_MIN_NS = 600 * NS_PER_S
TWO_H_NS = 7200 * NS_PER_S


@dataclass
class Interval:
    kind: str                 # "cycle10" (the 10/12-cycle window), "3s", "1s", "10min", "2h"
    start_ns: int             # clock time of the start of the first cycle
    end_ns: int               # clock time of the end of the last cycle
    duration_s: float         # measured time (sum of cycle durations)
    cycles: int
    values: dict[str, np.ndarray] = field(default_factory=dict)
    flagged: bool = False     # a dip, swell or interruption occurred (IEC 61000-4-30 4.7)
    gap: bool = False         # acquisition lost samples inside or just before this interval
    energy: object | None = None   # EnergyIncrement for "1s" intervals
    energy_comp: object | None = None   # its loss-compensated twin, when loss compensation is on


def cycles_values(cm: CycleMeasures, weights: np.ndarray, present: np.ndarray, creep_current: float,
                  convention: str, phase_order: str) -> dict[str, np.ndarray]:
    """Values of the interval made of the cycles ``cm`` with the given weights (sum 1)."""
    w = weights[:, None]
    ms = (cm.ms * w).sum(axis=0)
    vi = (cm.vi * w).sum(axis=0)
    fund = cm.fund
    s1 = ((fund[:, V_LN] * np.conj(fund[:, I_PH])) * w).sum(axis=0)
    pw = compute_power(ms[V_LN], ms[I_PH], vi, s1, present, creep_current, convention)
    valid = ~np.isnan(cm.freq)
    freq = float(valid.sum() / cm.duration_s[valid].sum()) if valid.any() else math.nan
    rms = np.sqrt(ms)
    out: dict[str, np.ndarray] = {
        "v_ln": rms[V_LN], "v_ll": rms[V_LL], "i": rms[I_PH],
        "i_n": rms[I_N:I_N + 1], "i_res": rms[I_RES:I_RES + 1],
        "p": pw.p, "q": pw.q, "s": pw.s_arith, "s_vect": pw.s_vect, "pf": pw.pf, "dpf": pw.dpf,
        "quadrant": pw.quadrant.astype(np.float64), "p1": _p1(s1, pw.p, present, ms, creep_current),
        "freq": np.array([freq]),
    }
    mean_fund = (fund * w).sum(axis=0)
    out.update(sequence_values(mean_fund, phase_order))
    out["v_unbal"] = np.atleast_1d(max_deviation_unbalance(rms[V_LN][present] if present.sum() > 1
                                                           else np.array([np.nan])))
    ll = np.asarray(present[[0, 1, 2]] & present[[1, 2, 0]])
    out["v_ll_unbal"] = np.atleast_1d(max_deviation_unbalance(rms[V_LL][ll] if ll.sum() > 1 else np.array([np.nan])))
    out["i_unbal"] = np.atleast_1d(max_deviation_unbalance(rms[I_PH][present] if present.sum() > 1
                                                           else np.array([np.nan])))
    return out


def _p1(s1: np.ndarray, p: np.ndarray, present: np.ndarray, ms: np.ndarray, creep: float) -> np.ndarray:
    live = present & (np.sqrt(ms[I_PH]) >= creep)
    p1 = np.where(live, s1.real, 0.0)
    return np.append(p1, p1.sum())


def sequence_values(fund: np.ndarray, phase_order: str) -> dict[str, np.ndarray]:
    vs = sequence(fund[0], fund[1], fund[2], phase_order)
    is_ = sequence(fund[6], fund[7], fund[8], phase_order)
    vu0, vu2 = unbalance(vs)
    iu0, iu2 = unbalance(is_)
    return {"v_seq": np.abs(vs), "i_seq": np.abs(is_), "v_u0": np.atleast_1d(vu0), "v_u2": np.atleast_1d(vu2),
            "i_u0": np.atleast_1d(iu0), "i_u2": np.atleast_1d(iu2)}


def harmonic_values(h: HarmonicValues) -> dict[str, np.ndarray]:
    ref = np.angle(h.fund[0])
    angle = (np.degrees(np.angle(h.fund) - ref) + 180.0) % 360.0 - 180.0
    return {"h_mag": h.mag, "h_inter": h.inter, "h_angle": h.angle, "thd": h.thd, "thd_rms": h.thd_rms,
            "thd_odd": h.thd_odd, "thd_even": h.thd_even, "tdd": h.tdd, "k_factor": h.k_factor,
            "crest": h.crest, "angle": angle}


def aggregate(parts: list[Interval], kind: str, convention: str) -> Interval:
    """One interval from several (IEC 61000-4-30 4.5: RMS of RMS values, means of powers)."""
    values: dict[str, np.ndarray] = {}
    keys = parts[0].values.keys()
    for key in keys:
        stack = np.stack([p.values[key] for p in parts if key in p.values])
        if not np.isfinite(stack).any() or key not in RMS_KEYS + MEAN_KEYS + MAX_KEYS:
            values[key] = stack[-1]
            continue
        with warnings.catch_warnings():      # all-NaN columns (absent phases) stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            if key in RMS_KEYS:
                values[key] = np.sqrt(np.nanmean(stack ** 2, axis=0))
            elif key in MEAN_KEYS:
                values[key] = np.nanmean(stack, axis=0)
            else:
                values[key] = np.nanmax(stack, axis=0)
    if "p" in values:
        values["pf"] = signed_pf(values["p"], values["q"], values["s"], convention)
        values["dpf"] = signed_pf(values["p1"], values["q"], np.hypot(values["p1"], values["q"]), convention)
        values["quadrant"] = quadrant(values["p"], values["q"]).astype(np.float64)
    return Interval(kind, parts[0].start_ns, parts[-1].end_ns, sum(p.duration_s for p in parts),
                    sum(p.cycles for p in parts), values, any(p.flagged for p in parts),
                    any(p.gap for p in parts))


class ClockAggregator:
    """Aggregates intervals by the clock-aligned period their start falls in (10 min, 2 h)."""

    def __init__(self, period_ns: int, kind: str, convention: str) -> None:
        self.period_ns, self.kind, self.convention = period_ns, kind, convention
        self.parts: list[Interval] = []
        self.tick: int | None = None

    def add(self, item: Interval) -> list[Interval]:
        tick = item.start_ns // self.period_ns * self.period_ns
        out = []
        if self.tick is not None and tick != self.tick and self.parts:
            out.append(self._close())
        self.tick = tick
        self.parts.append(item)
        return out

    def _close(self) -> Interval:
        result = aggregate(self.parts, self.kind, self.convention)
        result.start_ns = self.tick if self.tick is not None else result.start_ns
        result.end_ns = result.start_ns + self.period_ns
        self.parts = []
        return result


class CountAggregator:
    """150/180-cycle values: ``count`` consecutive windows, restarted at every 10-min tick."""

    def __init__(self, count: int, kind: str, convention: str, resync_ns: int = TEN_MIN_NS) -> None:
        self.count, self.kind, self.convention, self.resync_ns = count, kind, convention, resync_ns
        self.parts: list[Interval] = []

    def restart(self) -> None:
        self.parts = []

    def add(self, item: Interval) -> list[Interval]:
        if self.parts and item.start_ns // self.resync_ns != self.parts[0].start_ns // self.resync_ns:
            self.parts = []          # incomplete group at the 10-min tick is dropped
        self.parts.append(item)
        if len(self.parts) == self.count:
            out = aggregate(self.parts, self.kind, self.convention)
            self.parts = []
            return [out]
        return []
