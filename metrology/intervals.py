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
from dataclasses import dataclass, field

import numpy as np

from metrology.cycle import CycleMeasures
from metrology.harmonics import HarmonicValues, sequence
from metrology.power import interval_power, quadrant, signed_pf
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
    ms = weights @ cm.ms
    vi = weights @ cm.vi
    fund = cm.fund
    s1 = weights @ (fund[:, V_LN] * np.conj(fund[:, I_PH]))
    pres = present.tolist()
    m = ms.tolist()
    pw = interval_power(m[V_LN], m[I_PH], vi.tolist(), s1.tolist(), pres, creep_current, convention)
    valid = ~np.isnan(cm.freq)
    n_valid = int(np.count_nonzero(valid))
    freq = n_valid / float(cm.duration_s[valid].sum()) if n_valid else math.nan
    rms = np.sqrt(ms)
    out: dict[str, np.ndarray] = {
        "v_ln": rms[V_LN], "v_ll": rms[V_LL], "i": rms[I_PH],
        "i_n": rms[I_N:I_N + 1], "i_res": rms[I_RES:I_RES + 1],
        "p": pw.p, "q": pw.q, "s": pw.s_arith, "s_vect": pw.s_vect, "pf": pw.pf, "dpf": pw.dpf,
        "quadrant": pw.quadrant.astype(np.float64), "p1": pw.p1,
        "freq": np.array([freq]),
    }
    out.update(sequence_values(weights @ fund, phase_order))
    lines = [pres[0] and pres[1], pres[1] and pres[2], pres[2] and pres[0]]
    r = rms.tolist()
    out["v_unbal"] = np.array([_unbalance(r[V_LN], pres)])
    out["v_ll_unbal"] = np.array([_unbalance(r[V_LL], lines)])
    out["i_unbal"] = np.array([_unbalance(r[I_PH], pres)])
    return out


def _unbalance(x: list[float], present: list[bool]) -> float:
    """``max_deviation_unbalance`` of the present values, NaN with fewer than two (plain floats: 3 values)."""
    v = [a for a, ok in zip(x, present) if ok]
    if len(v) < 2:
        return math.nan
    avg = sum(v) / len(v)
    return 100 * max(abs(a - avg) for a in v) / avg if avg > 0 else math.nan


def _sequence_matrix(phase_order: str) -> np.ndarray:
    """(3, 3) M with (zero, positive, negative) = (a, b, c) @ M, as ``harmonics.sequence``."""
    one = np.eye(3, dtype=complex)
    return np.stack([sequence(*one[:, k], phase_order) for k in range(3)])


_SEQUENCE = {order: _sequence_matrix(order) for order in ("ABC", "ACB")}


def sequence_values(fund: np.ndarray, phase_order: str) -> dict[str, np.ndarray]:
    seq = np.abs(fund[[[0, 1, 2], [6, 7, 8]]] @ _SEQUENCE[phase_order])    # (V, I) x (zero, pos, neg)
    out = {"v_seq": seq[0], "i_seq": seq[1]}
    for q, (zero, pos, neg) in zip("vi", seq.tolist()):
        out[f"{q}_u0"] = np.array([100 * zero / pos if pos > 0 else math.nan])
        out[f"{q}_u2"] = np.array([100 * neg / pos if pos > 0 else math.nan])
    return out


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
        stack = np.array([p.values[key] for p in parts if key in p.values])
        if key not in _AGGREGATED or not np.isfinite(stack).any():
            values[key] = stack[-1]
        elif key in MAX_KEYS:
            values[key] = np.fmax.reduce(stack, axis=0)      # NaN (absent phases) ignored, as nanmax
        elif key in RMS_KEYS:
            values[key] = np.sqrt(_nanmean(stack * stack))
        else:
            values[key] = _nanmean(stack)
    if "p" in values:
        values["pf"] = signed_pf(values["p"], values["q"], values["s"], convention)
        values["dpf"] = signed_pf(values["p1"], values["q"], np.hypot(values["p1"], values["q"]), convention)
        values["quadrant"] = quadrant(values["p"], values["q"]).astype(np.float64)
    return Interval(kind, parts[0].start_ns, parts[-1].end_ns, sum(p.duration_s for p in parts),
                    sum(p.cycles for p in parts), values, any(p.flagged for p in parts),
                    any(p.gap for p in parts))


_AGGREGATED = frozenset(RMS_KEYS + MEAN_KEYS + MAX_KEYS)


def _nanmean(stack: np.ndarray) -> np.ndarray:
    """``np.nanmean`` over axis 0 (same sum, same count) without its warning for all-NaN columns
    (absent phases), which stay NaN."""
    nan = np.isnan(stack)
    total = np.where(nan, 0.0, stack).sum(axis=0)
    count = stack.shape[0] - np.count_nonzero(nan, axis=0)
    out = np.full(total.shape, np.nan)
    return np.divide(total, count, out=out, where=count > 0)


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
