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

from dataclasses import dataclass, field

import numpy as np

from metrology import _kernels, deviation
from metrology._kernels import reference
from metrology.cycle import CycleMeasures
from metrology.harmonics import sequence
from metrology.power import quadrant, signed_pf

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
                convention: str, phase_order: str) -> np.ndarray:
    """``cycles_values`` unnamed: the interval_values kernel's flat output, the values where ``INTERVAL_SLICES`` say."""
    return _kernels.interval_values(cm.ms, cm.vi, cm.fund, cm.duration_s, cm.freq, weights, present,
                                    creep_current, convention == "IEEE", _SEQUENCE[phase_order])


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


def window_values(interval: np.ndarray, mag: np.ndarray, inter: np.ndarray, angle: np.ndarray,
                  fundamental: np.ndarray, ratio: np.ndarray, dev: np.ndarray, msv: np.ndarray | None
                  ) -> tuple[list[tuple[str, int, int, tuple[int, ...] | None]], tuple[list[str], np.ndarray]]:
    """A window's values as one flat array: its cycles' (``interval``, their ``cycles_flat``), its harmonic values
    from the window_harmonics kernel's results (``ratio`` (7, signals): THD, THD over RMS, odd and even THD, crest
    factor, K-factor, TDD, as ``harmonics.harmonic_ratios`` has them; ``fundamental`` the angle of each signal's
    fundamental from the first signal's, the window_finish kernel's), its deviations ``dev`` (4, channels;
    ``deviation.WINDOW_KEYS``) and signalling voltages ``msv`` (None: no frequency configured). Returns where each
    value sits in it (``Window``'s plan: name, bounds, shape) and the flat array with the keys in their order, as
    ``Interval.flat``: the aggregations add it as it is."""
    pieces = [interval, mag, inter, angle, ratio[:4], ratio[6], ratio[5], ratio[4], fundamental, dev]
    if msv is not None:
        pieces.append(msv)
    flat = np.concatenate(pieces, axis=None, dtype=np.float64)
    shapes = (mag.shape, ratio.shape, fundamental.shape, dev.shape, None if msv is None else msv.shape)
    keys, slices = _WINDOW_PLANS.get(shapes) or _window_plan(shapes)
    return slices, (keys, flat)


class Window(Interval):
    """A 10/12-cycle window ("cycle10"): its values are views of its flat array (``window_values``), named when first
    asked for. Most windows only enter the aggregations, which add the flat array as it is."""

    _plan: list[tuple[str, int, int, tuple[int, ...] | None]]
    _array: np.ndarray
    _named: dict[str, np.ndarray]

    @classmethod
    def of(cls, start_ns: int, end_ns: int, duration_s: float, cycles: int, flagged: bool, gap: bool,
           plan: list[tuple[str, int, int, tuple[int, ...] | None]], flat: tuple[list[str], np.ndarray]) -> Window:
        """The window whose values ``window_values`` gave as ``plan`` and ``flat``."""
        item = cls("cycle10", start_ns, end_ns, duration_s, cycles, _UNNAMED, flagged, gap, flat=flat)
        item._plan, item._array = plan, flat[1]
        return item

    @property      # type: ignore[override]
    def values(self) -> dict[str, np.ndarray]:
        named = self._named
        if named is _UNNAMED:
            flat = self._array
            named = self._named = {key: flat[lo:hi] if shape is None else flat[lo:hi].reshape(shape)
                                   for key, lo, hi, shape in self._plan}
        return named

    @values.setter
    def values(self, values: dict[str, np.ndarray]) -> None:
        self._named = values


_UNNAMED: dict[str, np.ndarray] = {}     # a Window's values not named yet


_WINDOW_PLANS: dict[tuple, tuple[list[str], list[tuple[str, int, int, tuple[int, ...] | None]]]] = {}


def _window_plan(shapes: tuple) -> tuple[list[str], list[tuple[str, int, int, tuple[int, ...] | None]]]:
    """Where each of a window's values sits in its flat array (``window_values``), and its shape (None: 1-D). The
    keys' list also names the values' aggregation layout (``RunningAggregate``), made here with the plan."""
    mag, ratio, fundamental, dev, msv = shapes
    parts: list[tuple[str, tuple[int, ...] | None, int]] = [(key, None, hi - lo) for key, lo, hi in INTERVAL_SLICES]
    parts += [(key, mag, int(np.prod(mag))) for key in HARMONIC_KEYS[:3]]
    parts += [(key, None, ratio[1]) for key in HARMONIC_KEYS[3:10]] + [("angle", None, fundamental[0])]
    parts += [(key, None, dev[1]) for key in deviation.WINDOW_KEYS]
    if msv is not None:
        parts.append(("msv", msv, int(np.prod(msv))))
    bounds = np.cumsum([0] + [size for _, _, size in parts]).tolist()
    keys = [key for key, _, _ in parts]
    plan = (keys, [(key, bounds[j], bounds[j + 1], shape) for j, (key, shape, _) in enumerate(parts)])
    _WINDOW_PLANS[shapes] = plan
    _FLAT_LAYOUTS[id(keys)] = (keys, _make_layout(keys, [(size,) if shape is None else shape for _, shape, size in parts],
                                                  [size for _, _, size in parts]))
    return plan


def aggregate(parts: list[Interval], kind: str, convention: str) -> Interval:
    """One interval from several (IEC 61000-4-30 4.5: RMS of RMS values, means of powers)."""
    run = RunningAggregate()
    for part in parts:
        run.add(part)
    return run.result(kind, convention)


class RunningAggregate:
    """``aggregate`` of intervals added one at a time, without keeping them (a 10-min value is made of
    3000 windows). Per value: the sum and count of the non-NaN entries (squares for RMS quantities), the
    maximum ignoring NaN and the latest value; NaN columns (absent phases) stay NaN. The sums add the
    intervals in order, as a reduction of their stack along its first axis does.
    """

    def __init__(self) -> None:
        self.count = 0

    def _layout(self, item: Interval) -> None:
        # a window's flat keys name its layout (made with its plan); other intervals' from their values
        keys = None if item.flat is None else item.flat[0]
        known = _FLAT_LAYOUTS.get(id(keys))
        layout = known[1] if known is not None and known[0] is keys else _layout(item.values)
        self.keys, self.square, self.bounds, self.shapes = layout.keys, layout.square, layout.bounds, layout.shapes
        self._plan = layout
        # the sums, counts, maxima (NaN: none yet), finite counts and latest values: rows of one array
        self.total, self.n, self.peak, self.finite, self.latest = layout.start.copy()

    def add(self, item: Interval) -> None:
        if self.count == 0:
            self._layout(item)
            self.start_ns, self.duration_s, self.cycles = item.start_ns, 0.0, 0
            self.flagged = self.gap = False
        if item.flat is None or item.flat[0] is not self.keys and item.flat[0] != self.keys:
            item.flat = (self.keys, np.concatenate([item.values[k] for k in self.keys], axis=None, dtype=np.float64))
        # one pass over the values (reference.aggregate_add)
        _kernels.aggregate_add(item.flat[1], self.square, self.total, self.n, self.peak, self.finite, self.latest)
        self.count += 1
        self.end_ns = item.end_ns
        self.duration_s += item.duration_s
        self.cycles += item.cycles
        self.flagged |= item.flagged
        self.gap |= item.gap

    def result(self, kind: str, convention: str) -> Interval:
        plan = self._plan
        # a value with no finite entry keeps its latest; else its maximum, root mean square or mean, by kind
        seen = np.concatenate(([0.0], np.cumsum(self.finite)))
        any_finite = seen[plan.his] > seen[plan.los]
        flat = self.latest.copy()
        take = np.repeat(any_finite, plan.sizes)
        mean = np.full(self.total.shape, np.nan)
        np.divide(self.total, self.n, out=mean, where=self.n > 0)
        rms = take & plan.rms
        flat[rms] = np.sqrt(mean[rms])
        mean_ = take & plan.mean
        flat[mean_] = mean[mean_]
        peak = take & plan.max
        flat[peak] = self.peak[peak]
        values = {key: flat[lo:hi] if shape is None else flat[lo:hi].reshape(shape) for key, lo, hi, shape in plan.slices}
        if "p" in values:
            values["pf"] = signed_pf(values["p"], values["q"], values["s"], convention)
            values["dpf"] = signed_pf(values["p1"], values["q"], np.hypot(values["p1"], values["q"]), convention)
            values["quadrant"] = quadrant(values["p"], values["q"]).astype(np.float64)
        return Interval(kind, self.start_ns, self.end_ns, self.duration_s, self.cycles, values, self.flagged,
                        self.gap)



@dataclass(frozen=True)
class _Layout:
    """Where each value sits in ``RunningAggregate``'s flat arrays, and how it aggregates (per entry)."""
    keys: list[str]
    shapes: list[tuple[int, ...]]
    bounds: list[int]
    sizes: np.ndarray
    los: np.ndarray
    his: np.ndarray
    square: np.ndarray      # 1.0 for the entries of RMS values
    rms: np.ndarray         # bool per entry: RMS, mean or maximum (else: the latest)
    mean: np.ndarray
    max: np.ndarray
    slices: list[tuple[str, int, int, tuple[int, ...] | None]]    # shape None: 1-D, the slice as it is
    start: np.ndarray       # (5, width): RunningAggregate's arrays before any interval (zeros; NaN maxima)


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


def _make_layout(keys: list[str], shapes: list[tuple[int, ...]], sizes: list[int]) -> _Layout:
    """The layout of values named ``keys``, of these shapes and sizes, in this order."""
    bounds = np.cumsum([0] + sizes).tolist()

    def entries(names) -> np.ndarray:
        return np.repeat([k in names for k in keys], sizes).astype(bool)
    start = np.zeros((5, bounds[-1]))
    start[2] = np.nan
    return _Layout(
        keys, shapes, bounds, np.array(sizes, dtype=np.intp), np.array(bounds[:-1]), np.array(bounds[1:]),
        np.repeat([1.0 if k in RMS_KEYS else 0.0 for k in keys], sizes), entries(RMS_KEYS),
        entries(MEAN_KEYS), entries(MAX_KEYS),
        [(k, bounds[j], bounds[j + 1], None if shapes[j] == (sizes[j],) else shapes[j]) for j, k in enumerate(keys)],
        start)


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
