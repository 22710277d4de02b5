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
zero, positive, negative), v_u0 v_u2 i_u0 i_u2 v_unbal i_unbal (%); flicker (3, metrology/flicker.py):
pinst (1-s values: the latest), pst (10-min values: that interval's; 2-h values: the highest; 1-s: the
latest), plt (2-h values: that period's; 1-s: the latest); v_under v_over (3, V) and under_dev over_dev (3, % of
Udin) of the voltage channels the events watch (metrology/deviation.py); msv (3, k) their mains signalling
voltage, V, at each of the k configured frequencies (metrology/signalling.py; absent when none are);
freq_10s (``FREQ_10S_SLOTS``, 10-min values only): the 10-s frequencies of IEC 61000-4-30 5.1 inside the
interval, slot k the one that starts k * 10 s after it, NaN when flagged (lost samples, a dip, swell or
interruption) or not measured.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import numpy as np

from metrology import _kernels, deviation
from metrology._kernels import reference
from metrology.cycle import CycleMeasures
from metrology.harmonics import sequence

RMS_KEYS = ("v_ln", "v_ll", "i", "i_n", "i_res", "h_mag", "h_inter", "thd", "thd_rms", "thd_odd",
            "thd_even", "tdd", "v_seq", "i_seq", "v_u0", "v_u2", "i_u0", "i_u2", "v_unbal", "v_ll_unbal", "i_unbal",
            "v_under", "v_over", "msv")
MEAN_KEYS = ("p", "q", "s", "s_vect", "p1", "freq", "k_factor")
MAX_KEYS = ("crest", "pst")
LAST_KEYS = ("h_angle", "angle")

NS_PER_S = 1_000_000_000
TEN_MIN_NS = 600 * NS_PER_S
FREQ_10S_SLOTS = 60              # 10-s frequency values of a 10-min interval
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
    # (keys, the values flat in their order) as RunningAggregate adds them, made once for every aggregation it enters
    flat: tuple[list[str], np.ndarray] | None = field(default=None, repr=False, compare=False)


def cycles_values(cm: CycleMeasures, weights: np.ndarray, present: np.ndarray, creep_current: float,
                  convention: str, phase_order: str) -> dict[str, np.ndarray]:
    """Values of the interval made of the cycles ``cm`` with the given weights (sum 1): one pass of the
    interval_values kernel (the definition is ``reference.interval_values``), named (views of its output)."""
    flat = cycles_flat(cm, weights, present, creep_current, convention, phase_order)
    return {key: flat[lo:hi] for key, lo, hi in INTERVAL_SLICES}


def cycles_flat(cm: CycleMeasures, weights: np.ndarray, present: np.ndarray, creep_current: float,
                convention: str, phase_order: str, out: np.ndarray | None = None) -> np.ndarray:
    """``cycles_values`` unnamed: the interval_values kernel's flat output (in ``out`` when given), the values where
    ``INTERVAL_SLICES`` say."""
    return _kernels.interval_values(cm.ms, cm.vi, cm.fund, cm.duration_s, cm.freq, weights, present,
                                    creep_current, convention == "IEEE", _SEQUENCE[phase_order], out)


INTERVAL_SLICES = [(key, int(hi) - size, int(hi)) for (key, size), hi in
                   zip(reference.INTERVAL_VALUES, np.cumsum([size for _, size in reference.INTERVAL_VALUES]))]
INTERVAL_AT = {key: slice(lo, hi) for key, lo, hi in INTERVAL_SLICES}


def sequence_matrix(phase_order: str) -> np.ndarray:
    """(3, 3) M with (zero, positive, negative) = (a, b, c) @ M, as ``harmonics.sequence``."""
    one = np.eye(3, dtype=complex)
    return np.stack([sequence(one[0, k], one[1, k], one[2, k], phase_order) for k in range(3)])


_SEQUENCE = {order: sequence_matrix(order) for order in ("ABC", "ACB")}


HARMONIC_KEYS = ("h_mag", "h_inter", "h_angle", "thd", "thd_rms", "thd_odd", "thd_even", "tdd", "k_factor", "crest",
                 "angle")


Slot = tuple[int, int, tuple[int, ...]]      # bounds in a window's flat array and the shape of the view there


@dataclass(frozen=True, eq=False)
class WindowPlan:
    """Where a window's values sit in its flat array, which the window's kernels write in place (``views``): its
    cycles' (``cycles_flat``), then window_harmonics' mag, inter and angle (signals, orders) and ratio (7, signals)
    (THD, THD over RMS, odd and even THD, crest factor, K-factor, TDD, as ``harmonics.harmonic_ratios`` has them),
    then window_finish's angles of the fundamentals (signals,), deviations (4, channels; ``deviation.WINDOW_KEYS``)
    and signalling voltages (channels, k; not in the array when no frequency is configured)."""
    size: int
    keys: list[str]          # the values in the array's order: the aggregations' layout (``RunningAggregate``)
    named: list[tuple[str, int, int, tuple[int, ...] | None]]   # name, bounds and shape (None: 1-D) in the values' order
    harmonics: Slot          # mag, inter and angle as one (3, signals, orders) view
    ratio: Slot
    angle: Slot
    dev: Slot
    msv: Slot | None
    no_msv: np.ndarray       # (channels, 0): window_finish's signalling voltages when none is configured

    def views(self, flat: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The views of ``flat`` the kernels write: the interval values (``cycles_flat``'s out), window_harmonics'
        (mag, inter, angle, ratio) and window_finish's (angle, dev, msv)."""
        lo, hi, shape = self.harmonics
        mag, inter, angle = flat[lo:hi].reshape(shape)
        lo, hi, shape = self.ratio
        ratio = flat[lo:hi].reshape(shape)
        lo, hi, _ = self.angle
        fundamental = flat[lo:hi]
        lo, hi, shape = self.dev
        dev = flat[lo:hi].reshape(shape)
        msv = self.no_msv
        if self.msv is not None:
            lo, hi, shape = self.msv
            msv = flat[lo:hi].reshape(shape)
        return flat[:reference.INTERVAL_SIZE], (mag, inter, angle, ratio), (fundamental, dev, msv)


def window_plan(signals: int, orders: int, channels: int, msv: int | None) -> WindowPlan:
    """The plan of windows of ``signals`` harmonic signals of ``orders`` orders, ``channels`` deviation channels and
    ``msv`` signalling frequencies (None: none configured), made once per shape."""
    shape = (signals, orders, channels, msv)
    plan = _WINDOW_PLANS.get(shape)
    return plan if plan is not None else _window_plan(shape)


# a window's values in the ratio kernel output's row order (the 4th to 6th the other way round in a window's values)
_RATIO_KEYS = ("thd", "thd_rms", "thd_odd", "thd_even", "crest", "k_factor", "tdd")
_WINDOW_PLANS: dict[tuple, WindowPlan] = {}


def _window_plan(shape: tuple[int, int, int, int | None]) -> WindowPlan:
    s, orders, nc, nk = shape
    # (name, shape, size) in the flat array's order
    parts: list[tuple[str, tuple[int, ...] | None, int]] = [(key, None, hi - lo) for key, lo, hi in INTERVAL_SLICES]
    parts += [(key, (s, orders), s * orders) for key in HARMONIC_KEYS[:3]]
    parts += [(key, None, s) for key in _RATIO_KEYS] + [("angle", None, s)]
    parts += [(key, None, nc) for key in deviation.WINDOW_KEYS]
    if nk is not None:
        parts.append(("msv", (nc, nk), nc * nk))
    bounds = np.cumsum([0] + [size for _, _, size in parts]).tolist()
    keys = [key for key, _, _ in parts]
    at = {key: (bounds[j], bounds[j + 1], part_shape) for j, (key, part_shape, _) in enumerate(parts)}
    order = [key for key, _, _ in INTERVAL_SLICES] + list(HARMONIC_KEYS) + list(deviation.WINDOW_KEYS)
    order += ["msv"] if nk is not None else []
    h0, r0, a0, d0 = at["h_mag"][0], at["thd"][0], at["angle"][0], at["v_under"][0]
    plan = WindowPlan(bounds[-1], keys, [(key, *at[key]) for key in order], (h0, h0 + 3 * s * orders, (3, s, orders)),
                      (r0, r0 + 7 * s, (7, s)), (a0, a0 + s, (s,)), (d0, d0 + 4 * nc, (4, nc)),
                      None if nk is None else (at["msv"][0], at["msv"][1], (nc, nk)), np.empty((nc, 0)))
    _WINDOW_PLANS[shape] = plan
    _FLAT_LAYOUTS[id(keys)] = (keys, _make_layout(keys, [(size,) if part_shape is None else part_shape
                                                         for _, part_shape, size in parts],
                                                  [size for _, _, size in parts], order))
    return plan


class Window(Interval):
    """A 10/12-cycle window ("cycle10"): its values are views of its flat array (``WindowPlan``), named when first
    asked for. Most windows only enter the aggregations, which add the flat array as it is (``Interval.flat``)."""

    _plan: list[tuple[str, int, int, tuple[int, ...] | None]]
    _array: np.ndarray
    _named: dict[str, np.ndarray] | None      # None: not named yet (a copy or a pickle names its own)

    @classmethod
    def of(cls, start_ns: int, end_ns: int, duration_s: float, cycles: int, flagged: bool, gap: bool,
           plan: WindowPlan, flat: np.ndarray) -> Window:
        """The window whose values the kernels wrote in ``flat`` where ``plan`` says."""
        item = cls("cycle10", start_ns, end_ns, duration_s, cycles, _UNNAMED, flagged, gap, flat=(plan.keys, flat))
        item._plan, item._array = plan.named, flat
        return item

    @property      # type: ignore[override]
    def values(self) -> dict[str, np.ndarray]:
        named = self._named
        if named is None:
            flat = self._array
            named = self._named = {key: flat[lo:hi] if shape is None else flat[lo:hi].reshape(shape)
                                   for key, lo, hi, shape in self._plan}
        return named

    @values.setter
    def values(self, values: dict[str, np.ndarray]) -> None:
        self._named = None if values is _UNNAMED else values


_UNNAMED: dict[str, np.ndarray] = {}     # Window.of's values: named when first asked for


def aggregate(parts: list[Interval], kind: str, convention: str) -> Interval:
    """One interval from several (IEC 61000-4-30 4.5: RMS of RMS values, means of powers)."""
    run = RunningAggregate()
    for part in parts:
        run.add(part)
    return run.result(kind, convention)


ADD_ROWS = 15      # intervals a RunningAggregate holds before it adds them, in one aggregate_add call


class RunningAggregate:
    """``aggregate`` of intervals added one at a time, without keeping them (a 10-min value is made of
    3000 windows). Per value: the sum and count of the non-NaN entries (squares for RMS quantities), the
    maximum ignoring NaN and the latest value; NaN columns (absent phases) stay NaN. The sums add the
    intervals in order, as a reduction of their stack along its first axis does. The flat arrays of up to
    ``ADD_ROWS`` intervals wait (held, not copied: an added interval's values do not change) and go into the
    sums as the rows of one aggregate_add call, which passes over the sums once for them all.
    """

    def __init__(self) -> None:
        self.count = 0
        self.pending: list[np.ndarray] = []

    def _layout(self, item: Interval) -> None:
        # a window's flat keys name its layout (made with its plan); other intervals' from their values
        keys = None if item.flat is None else item.flat[0]
        known = _FLAT_LAYOUTS.get(id(keys))
        layout = known[1] if known is not None and known[0] is keys else _layout(item.values)
        self.keys, self.square, self.bounds, self.shapes = layout.keys, layout.square, layout.bounds, layout.shapes
        self._plan = layout
        # the sums, counts, maxima (NaN: none yet), finite counts and latest values: rows of one array
        self.sums = layout.start.copy()
        self.total, self.n, self.peak, self.finite, self.latest = self.sums

    def add(self, item: Interval) -> None:
        if self.count == 0:
            self._layout(item)
            self.start_ns, self.duration_s, self.cycles = item.start_ns, 0.0, 0
            self.flagged = self.gap = False
        if item.flat is None or item.flat[0] is not self.keys and item.flat[0] != self.keys:
            item.flat = (self.keys, np.concatenate([item.values[k] for k in self.keys], axis=None, dtype=np.float64))
        self.pending.append(item.flat[1])
        if len(self.pending) == ADD_ROWS:
            self._add_pending()
        self.count += 1
        self.end_ns = item.end_ns
        self.duration_s += item.duration_s
        self.cycles += item.cycles
        self.flagged |= item.flagged
        self.gap |= item.gap

    def _add_pending(self) -> None:
        # the waiting intervals in one pass over the sums (reference.aggregate_add)
        pending = self.pending
        _kernels.aggregate_add(_stacked(pending) if len(pending) > 1 else pending[0], self.square, self.total,
                               self.n, self.peak, self.finite, self.latest)
        self.pending = []

    def result(self, kind: str, convention: str) -> Interval:
        if self.pending:
            self._add_pending()
        plan = self._plan
        # a value with no finite entry keeps its latest; else its maximum, root mean square or mean, by kind
        flat = _kernels.aggregate_result(self.sums, plan.kind, plan.edges)
        values = {key: flat[lo:hi] if shape is None else flat[lo:hi].reshape(shape) for key, lo, hi, shape in plan.slices}
        if "p" in values:
            values["pf"], values["dpf"], values["quadrant"] = power_factors(values["p"], values["q"], values["s"],
                                                                            values["p1"], convention)
        return Interval(kind, self.start_ns, self.end_ns, self.duration_s, self.cycles, values, self.flagged,
                        self.gap)



def power_factors(p: np.ndarray, q: np.ndarray, s: np.ndarray, p1: np.ndarray, convention: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``power.signed_pf`` of (p, q, s) and of (p1, q, hypot(p1, q)), and ``power.quadrant`` of (p, q) as float: the
    same operations on the same doubles, each of the few values (a, b, c, total) as a Python float, which costs less
    than the numpy calls on arrays this small."""
    ieee = convention == "IEEE"

    def pf(w: float, var: float, va: float) -> float:
        mag = abs(w) / va if va > 0 else math.nan
        mag = 1.0 if mag > 1.0 else mag
        return mag if (w * var >= 0 if ieee else w >= 0) else -mag

    ws, vars_, vas, w1s = p.tolist(), q.tolist(), s.tolist(), p1.tolist()
    va1s = np.hypot(p1, q).tolist()
    return (np.array([pf(w, var, va) for w, var, va in zip(ws, vars_, vas)]),
            np.array([pf(w, var, va) for w, var, va in zip(w1s, vars_, va1s)]),
            np.array([_QUADRANT_F[(not w >= 0) + 2 * (not var >= 0)] for w, var in zip(ws, vars_)]))


_QUADRANT_F = (1.0, 2.0, 4.0, 3.0)     # power.quadrant's, by (not W >= 0) + 2 (not var >= 0)


def _stacked(rows: list[np.ndarray]) -> np.ndarray:
    """``rows`` stacked: the last stack again when it was of the same arrays (the 3-s and 10-min aggregations add
    the same windows, and wait for as many)."""
    last_rows, last = _LAST_STACK[0]
    if len(last_rows) == len(rows) and all(map(operator.is_, last_rows, rows)):
        return last
    stacked = np.stack(rows)
    _LAST_STACK[0] = (rows, stacked)
    return stacked


# the rows of the last stack (held: their identity stays theirs) and the stack, as one tuple that is read at once
_LAST_STACK: list[tuple[list[np.ndarray], np.ndarray]] = [([], np.zeros((0, 0)))]


@dataclass(frozen=True)
class _Layout:
    """Where each value sits in ``RunningAggregate``'s flat arrays, and how it aggregates (per entry)."""
    keys: list[str]
    shapes: list[tuple[int, ...]]
    bounds: list[int]
    square: np.ndarray      # 1.0 for the entries of RMS values
    slices: list[tuple[str, int, int, tuple[int, ...] | None]]    # shape None: 1-D, the slice as it is
    start: np.ndarray       # (5, width): RunningAggregate's arrays before any interval (zeros; NaN maxima)
    kind: np.ndarray        # per entry, as aggregate_result takes it: 1 RMS, 2 mean, 3 maximum, 0 the latest
    edges: np.ndarray       # the bounds as float64, as aggregate_result takes them


_LAYOUTS: dict[tuple, _Layout] = {}
_FLAT_LAYOUTS: dict[int, tuple[list[str], _Layout]] = {}    # by id of a window plan's keys: (the keys, layout)


def _layout(values: dict[str, np.ndarray]) -> _Layout:
    """The layout of intervals with these values (their names and shapes), made once per set of names and shapes."""
    arrays = [np.asarray(v) for v in values.values()]
    shapes = [a.shape for a in arrays]
    key = (tuple(values), tuple(shapes))
    layout = _LAYOUTS.get(key)
    if layout is None:
        layout = _LAYOUTS[key] = _make_layout(list(values), shapes, [a.size for a in arrays])
    return layout


def _make_layout(keys: list[str], shapes: list[tuple[int, ...]], sizes: list[int], order: list[str] | None = None
                 ) -> _Layout:
    """The layout of values named ``keys``, of these shapes and sizes, in this order; the aggregated values come in
    ``order`` (None: the same)."""
    bounds = np.cumsum([0] + sizes).tolist()
    slices = [(k, bounds[j], bounds[j + 1], None if shapes[j] == (sizes[j],) else shapes[j]) for j, k in enumerate(keys)]
    if order is not None:
        slices.sort(key=lambda item: order.index(item[0]))
    start = np.zeros((5, bounds[-1]))
    start[2] = np.nan
    kind = [3.0 if k in MAX_KEYS else 2.0 if k in MEAN_KEYS else 1.0 if k in RMS_KEYS else 0.0 for k in keys]
    return _Layout(keys, shapes, bounds, np.repeat([1.0 if k in RMS_KEYS else 0.0 for k in keys], sizes), slices, start,
                   np.repeat(kind, sizes), np.array(bounds, dtype=np.float64))


class ClockAggregator:
    """Aggregates intervals by the clock-aligned period their start falls in (10 min, 2 h)."""

    def __init__(self, period_ns: int, kind: str, convention: str) -> None:
        self.period_ns, self.kind, self.convention = period_ns, kind, convention
        self.run = RunningAggregate()
        self.tick: int | None = None

    def add(self, item: Interval) -> list[Interval]:
        tick = item.start_ns // self.period_ns * self.period_ns
        out = []
        if self.tick is not None and tick != self.tick and self.run.count:
            out.append(self._close())
        self.tick = tick
        self.run.add(item)
        return out

    def _close(self) -> Interval:
        result = self.run.result(self.kind, self.convention)
        result.start_ns = self.tick if self.tick is not None else result.start_ns
        result.end_ns = result.start_ns + self.period_ns
        self.run = RunningAggregate()
        return result


class CountAggregator:
    """150/180-cycle values: ``count`` consecutive windows, restarted at every 10-min tick."""

    def __init__(self, count: int, kind: str, convention: str, resync_ns: int = TEN_MIN_NS) -> None:
        self.count, self.kind, self.convention, self.resync_ns = count, kind, convention, resync_ns
        self.run = RunningAggregate()

    def restart(self) -> None:
        self.run = RunningAggregate()

    def add(self, item: Interval) -> list[Interval]:
        if self.run.count and item.start_ns // self.resync_ns != self.run.start_ns // self.resync_ns:
            self.run = RunningAggregate()      # incomplete group at the 10-min tick is dropped
        self.run.add(item)
        if self.run.count == self.count:
            out = self.run.result(self.kind, self.convention)
            self.run = RunningAggregate()
            return [out]
        return []
