"""Flicker per IEC 61000-4-15 Ed.2: Pinst, Pst over clock-aligned 10-min intervals, Plt over 2 h.

The flickermeter chain, per voltage channel:

    block 1  input voltage adaptor: the signal is scaled by its own mean square, filtered first order with a
             1-min time constant (the division comes after block 3, whose filters are linear and whose
             output is the fluctuation alone: the same, as the reference moves slowly)
    block 2  squaring demodulator: u², then a boxcar mean over ``D`` samples down to ~1 kHz
    block 3  0.05 Hz first-order high-pass, 6th-order Butterworth low-pass (35 Hz at 50 Hz mains, 42 Hz at
             60 Hz), weighting filter of the 230 V or 120 V lamp model (bilinear transform of the standard's
             transfer function), one cascade of second-order sections
    block 4  squaring and a first-order low-pass with a 300 ms time constant, scaled so that the reference
             fluctuation (sinusoidal, 8.8 Hz, ΔV/V = 0.250 %, 230 V lamp) gives Pinst = 1 at its maximum
    block 5  statistics: Pinst sampled at 100 Hz (the standard asks >= 50 Hz); the percentiles are taken
             exactly from the sorted samples of the interval (the limit of a classifier with infinitely
             many classes); Pst = sqrt(0.0314 P0.1 + 0.0525 P1s + 0.0657 P3s + 0.28 P10s + 0.08 P50s)

Why the boxcar before the low-pass is enough: the squares carry the flicker band (0-35 Hz) and lines at
multiples of twice the mains frequency (and products of harmonics). Only components within ~40 Hz of a
multiple of the decimated rate (~1 kHz) fold into the flicker band, and there the boxcar has its nulls:
a 1 % harmonic product 10 Hz away from a null arrives below 1e-4 of the carrier, a few % of the Pinst
threshold's amplitude and 0.1 % of its Pinst. The boxcar's own droop at 35 Hz is 0.2 %. Running the
35 Hz Butterworth at 32 kHz instead would cost more than the rest of the metrology pipeline.

The filters run on 0.5-s batches of the decimated signal (their cost is per call more than per sample);
a (re)start settles them on the first cycles (``FlickerMeter._start``). ``FlickerMeter`` is the streaming
flickermeter; ``PipelineFlicker`` is the metrology pipeline's use of it (which voltages, which values).

Pure numbers: time is passed in with every block (``t0_ns`` of its first sample), nothing here reads a
clock. The lamp model (230 V or 120 V) and the mains frequency only select filters; the sample rate can
be anything from 2 kHz up.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from metrology import _kernels
from metrology.iir import bilinear_sos, butter_sos, first_order_sos, sos_response, sosfilt_zi
from metrology.intervals import Interval
from metrology.settings import MetrologySettings
from metrology.systems import V_LL, V_LN

NS_PER_S = 1_000_000_000
DECIMATED_HZ = 1000.0          # target rate after the boxcar (block 2); exact rate is fs / round(fs / 1000)
STATS_HZ = 100.0               # Pinst sampling for the statistics (IEC 61000-4-15 Ed.2 4.7.2: >= 50 Hz)
ADAPTOR_TAU_S = 60.0           # block 1: first-order filter of the half-period RMS, 1 min
HIGH_PASS_HZ = 0.05            # block 3: first-order high-pass
LOW_PASS_HZ = {50.0: 35.0, 60.0: 42.0}    # block 3: 6th-order Butterworth low-pass, by mains frequency
LOW_PASS_ORDER = 6
SMOOTHING_TAU_S = 0.3          # block 4: first-order sliding mean, 300 ms
REFERENCE_HZ = 8.8             # the reference fluctuation: sinusoidal 8.8 Hz, ΔV/V 0.250 % gives Pinst 1
REFERENCE_DVV = 0.0025         # (Ed.2 Table 1a, 230 V lamp)
BATCH_S = 0.5                  # the filters run on this much decimated signal at a time
START_CYCLES = 10              # the filters start from the mean square of this many nominal cycles
PRIME_S = 1.0                  # the band-pass runs this long on the first cycles before measuring (_start)
WARMUP_S = 1.0                 # Pinst after a (re)start is left out of the statistics while filters settle
MIN_COVERAGE = 2.0 / 3.0       # a Pst needs Pinst for this fraction of its interval, else NaN
PST_INTERVAL_S = 600           # IEC 61000-4-15: Pst over 10 min
PLT_COUNT = 12                 # Plt over 12 Pst (2 h)

# Weighting filter (block 3), IEC 61000-4-15 Ed.2 4.6:
#   K w1 s / (s² + 2 λ s + w1²) · (1 + s/w2) / ((1 + s/w3)(1 + s/w4)), frequencies in Hz (times 2π below)
LAMPS: dict[int, tuple[float, float, float, float, float, float]] = {
    #     K        λ/2π       w1/2π      w2/2π      w3/2π      w4/2π
    230: (1.74802, 4.05981, 9.15494, 2.27979, 1.22535, 21.9),
    120: (1.6357, 4.167375, 9.077169, 2.939902, 1.394468, 17.31512),
}

# Smoothed percentiles (IEC 61000-4-15 Ed.2 4.7.2): level exceeded for x % of the time, averaged
P50S = (30.0, 50.0, 80.0)
P10S = (6.0, 8.0, 10.0, 13.0, 17.0)
P3S = (2.2, 3.0, 4.0)
P1S = (0.7, 1.0, 1.5)
P01 = 0.1
PST_WEIGHTS = (0.0314, 0.0525, 0.0657, 0.28, 0.08)      # P0.1, P1s, P3s, P10s, P50s


def _sosfilt(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sections ``sos`` along axis 0 of ``x`` (n, channels), each channel from its state ``zi`` (sections, 2,
    channels): ``scipy.signal.sosfilt(sos, x, axis=0, zi=zi)``, on the C kernel."""
    y = np.empty(x.shape)
    zf = np.empty(zi.shape)
    for c in range(x.shape[1]):
        y[:, c], zf[:, :, c] = _kernels.sosfilt(sos, np.ascontiguousarray(x[:, c]), zi[:, :, c])
    return y, zf


def weighting_analog(lamp_v: int) -> tuple[np.ndarray, np.ndarray]:
    """(b, a) of the lamp-eye-brain weighting filter in s, for the 230 V or 120 V lamp."""
    if lamp_v not in LAMPS:
        raise ValueError(f"flicker lamp model must be 230 or 120 V, got {lamp_v}")
    k, lam, w1, w2, w3, w4 = (LAMPS[lamp_v][0],) + tuple(2 * math.pi * f for f in LAMPS[lamp_v][1:])
    b = np.polymul([k * w1, 0.0], [1.0 / w2, 1.0])
    a = np.polymul([1.0, 2 * lam, w1 * w1], [1.0 / (w3 * w4), 1.0 / w3 + 1.0 / w4, 1.0])
    return b, a


def pst_from_pinst(pinst: np.ndarray) -> float:
    """Pst of one interval's Pinst samples (IEC 61000-4-15 Ed.2 4.7.2), NaN for none."""
    x = np.asarray(pinst, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan
    levels = (P01,) + P1S + P3S + P10S + P50S
    # P_x is exceeded x % of the time: the (100 - x)th percentile
    p = dict(zip(levels, np.percentile(x, [100.0 - q for q in levels]).tolist()))
    smoothed = (p[P01], *(sum(p[q] for q in g) / len(g) for g in (P1S, P3S, P10S, P50S)))
    return math.sqrt(max(sum(w * v for w, v in zip(PST_WEIGHTS, smoothed)), 0.0))


def plt_from_pst(pst: np.ndarray, count: int = PLT_COUNT) -> np.ndarray:
    """Plt = cube root of the mean of the cubes of ``count`` Pst (rows), per column; NaN unless all are there."""
    x = np.asarray(pst, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    out = np.cbrt(np.sum(x ** 3, axis=0) / count)
    full = (x.shape[0] == count) & np.all(np.isfinite(x), axis=0)
    return np.where(full, out, np.nan)


@dataclass
class PstInterval:
    start_ns: int              # clock-aligned start of the interval
    end_ns: int
    pst: np.ndarray            # (channels,) NaN where the interval had too little Pinst
    pinst_max: np.ndarray      # (channels,)
    covered_s: float           # time of Pinst samples that entered the statistics


class FlickerMeter:
    """Streaming flickermeter for ``channels`` voltages sampled at ``fs``.

    ``process(v, t0_ns)`` takes a block (n, channels) of samples whose first sample is at clock time
    ``t0_ns`` and returns the Pst intervals the block closed. ``restart()`` after lost samples: the filters
    start over on the next block (and Pinst is left out of the statistics for ``WARMUP_S``); the open
    interval goes on. ``pinst`` holds the latest Pinst per channel, ``last_pst``/``last_plt`` the latest Pst and
    Plt closed, ``history`` the Pst of recent intervals by start time (enough for one Plt period),
    ``pst(start_ns)`` and ``plt(start_ns)`` those of the interval or Plt period starting there.
    """

    def __init__(self, fs: float, nominal_frequency: float = 50.0, lamp_v: int = 230, channels: int = 3,
                 interval_s: int = PST_INTERVAL_S, plt_count: int = PLT_COUNT) -> None:
        if fs < 2000.0:
            raise ValueError(f"flicker needs at least 2 kHz sampling, got {fs} Hz")
        if nominal_frequency not in (50.0, 60.0):
            raise ValueError(f"flicker: nominal frequency must be 50 or 60 Hz, got {nominal_frequency}")
        self.fs, self.channels, self.lamp_v = float(fs), channels, lamp_v
        self.interval_ns = int(interval_s) * NS_PER_S
        self.plt_count = plt_count
        self.factor = max(1, int(round(fs / DECIMATED_HZ)))
        rate = self.rate = self.fs / self.factor
        self.stride = max(1, int(round(rate / STATS_HZ)))
        self._step_ns = self.factor * NS_PER_S / self.fs      # between the decimated samples
        self._lp = butter_sos(LOW_PASS_ORDER, LOW_PASS_HZ[float(nominal_frequency)], rate, "lowpass")
        self._hp = butter_sos(1, HIGH_PASS_HZ, rate, "highpass")
        bw, aw = weighting_analog(lamp_v)
        self._weight = bilinear_sos(bw, aw, rate)
        self._chain = np.concatenate([self._lp, self._hp, self._weight])
        self._adapt = math.exp(-1.0 / (rate * ADAPTOR_TAU_S))
        self._smooth = math.exp(-1.0 / (rate * SMOOTHING_TAU_S))
        # blocks 1 and 4's first-order low-passes, y = (1 - a) x + a y[-1]
        self._adapt_sos = first_order_sos(1.0 - self._adapt, -self._adapt)
        self._smooth_sos = first_order_sos(1.0 - self._smooth, -self._smooth)
        self._filters = np.concatenate((self._adapt_sos, self._chain, self._smooth_sos))    # as _filter runs them
        self.gain = self._reference_gain(rate)
        self.pinst = np.full(channels, np.nan)
        self.last_pst = np.full(channels, np.nan)     # of the latest interval closed
        self.last_plt = np.full(channels, np.nan)     # of the latest Plt period closed
        self.history: dict[int, np.ndarray] = {}
        self._started = False
        # filter states, set by _start from the first samples
        self._zref = self._zsmooth = np.zeros((1, 2, channels))
        self._zchain = np.zeros((0, 2, channels))
        # samples past the last whole boxcar, as process took them: the first _carried rows (the kernel fills it)
        self._carry = np.zeros((self.factor, channels))
        self._carried = 0
        self._identity = np.eye(channels)
        self._carry_t0_ns = 0
        self._tick: int | None = None
        self._stats: list[np.ndarray] = []
        self._phase = 0            # decimated samples since the last Pinst taken for the statistics
        self._warm = 0             # decimated samples still to skip for the statistics
        self._start_len = int(round(START_CYCLES * rate / nominal_frequency))
        self._batch_len = max(self._start_len, int(BATCH_S * rate))
        # the decimated squares and their times waiting for the filters: the first _queued rows
        self._queue = np.zeros((2 * self._batch_len, channels))
        self._queue_t = np.zeros(2 * self._batch_len)
        self._queued = 0

    def _reference_gain(self, rate: float) -> float:
        """Block 4 scale: the reference fluctuation's Pinst maximum is 1 (230 V lamp: |H(8.8 Hz)| ~ 1.0017).

        A sinusoidal ΔV/V = d gives, after blocks 1-3, a line of amplitude d |H| (the normalised square of
        (1 + d/2 cos) is 1 + d cos + ...). Squared and smoothed, its mean is (d |H|)² / 2 with a ripple at
        twice the frequency of relative size |L(2f)|, L the 300 ms low-pass: the maximum is the sum.
        """
        bw, aw = weighting_analog(230)
        w = 2 * math.pi * REFERENCE_HZ / rate
        z = np.exp(1j * w)
        h = abs(sos_response(self._lp, w) * sos_response(self._hp, w) * sos_response(bilinear_sos(bw, aw, rate), w))
        ripple = abs((1 - self._smooth) / (1 - self._smooth / z ** 2))
        return float(2.0 / ((REFERENCE_DVV * h) ** 2 * (1.0 + ripple)))

    # ------------------------------------------------------------------ streaming

    def restart(self) -> list[PstInterval]:
        """Samples were lost: what is queued is measured, and the next block starts the filters again."""
        out = self.drain()
        self._started = False
        self._carried = 0
        return out

    def process(self, v: np.ndarray, t0_ns: int, matrix: np.ndarray | None = None) -> list[PstInterval]:
        """Feed ``v`` (n, channels) in volts, or with ``matrix`` (C, channels) the inputs ``v`` (n, C) whose
        voltages are ``v @ matrix``; returns the Pst intervals that closed.

        The decimated squares wait until ``BATCH_S`` of them are queued: the filters' cost is mostly per call,
        so Pinst lags the input by up to that much (``drain()`` runs the queue at once)."""
        d = self.factor
        if not self._carried:
            self._carry_t0_ns = int(t0_ns)
        if self._carry.shape[1] != v.shape[1]:
            self._carry = np.zeros((d, v.shape[1]))       # inputs of another width: none carried (_carried is 0)
        runs = (self._carried + v.shape[0]) // d
        if self._queued + runs > self._queue.shape[0]:
            size = max(2 * self._queue.shape[0], self._queued + runs)
            self._queue = np.concatenate((self._queue[:self._queued], np.zeros((size - self._queued, self.channels))))
            self._queue_t = np.concatenate((self._queue_t[:self._queued], np.zeros(size - self._queued)))
        # block 2: squares, boxcar mean of the carried samples and v (one C pass over the inputs,
        # reference.flicker_squares) into the queue, with the time of each decimated sample (its boxcar's centre)
        t_first_ns, queued = self._carry_t0_ns, self._queued
        if matrix is not None and v.ndim == 2 and _kernels.flicker_squares is _kernels.c_flicker_squares:
            # the pipeline's call: the C kernel itself (c_flicker_squares without its wrapper)
            v = np.ascontiguousarray(v, np.float64)
            out = self._queue[queued:]
            _kernels._ckernels.flicker_squares(v, np.ascontiguousarray(matrix, np.float64), self._carry, out,
                                               self._queue_t[queued:], v.shape[0], v.shape[1], matrix.shape[1], d,
                                               self._carried, out.shape[0], float(t_first_ns), self._step_ns)
        else:
            _kernels.flicker_squares(v, self._identity if matrix is None else matrix, self._carry, self._carried,
                                     t_first_ns, self._step_ns, self._queue[queued:], self._queue_t[queued:])
        self._carried = (self._carried + v.shape[0]) % d
        self._carry_t0_ns = int(t_first_ns + runs * d * NS_PER_S / self.fs)
        if runs == 0:
            return []
        self._queued += runs
        return self.drain() if self._queued >= self._batch_len else []

    def drain(self) -> list[PstInterval]:
        """Run the queued samples through the filters and the statistics now."""
        if not self._queued:
            return []
        ms, t_ns = self._queue[:self._queued], self._queue_t[:self._queued]
        if not self._started:
            if ms.shape[0] < self._start_len:
                return []           # too few to start from: they stay queued
            # the squares swing at twice the mains frequency: the filters start from the mean of whole cycles
            self._start(ms[:self._start_len])
            ms, t_ns = ms[self._start_len:], t_ns[self._start_len:]
        self._queued = 0
        if ms.shape[0] == 0:
            return []
        pinst = self._filter(ms)
        self.pinst = pinst[-1].copy()
        return self._classify(pinst, t_ns)

    def _filter(self, ms: np.ndarray) -> np.ndarray:
        # block 1 reference: first-order low-pass of the mean square, 1-min time constant. The division by it
        # comes after the (linear) block 3 band-pass and weighting, whose output is the fluctuation alone: the
        # same as dividing before, as the reference moves slowly, and one filter call fewer
        # (one C pass per channel through the three filters, the division and the square: reference.flicker_chain)
        zi = np.concatenate((self._zref, self._zchain, self._zsmooth))
        y, zf = _kernels.flicker_chain(ms, self._filters, zi, self.gain)
        k = self._chain.shape[0]
        self._zref, self._zchain, self._zsmooth = zf[:1], zf[1:1 + k], zf[1 + k:]
        return y

    def _start(self, head: np.ndarray) -> None:
        """Filters settled on ``head``, the first decimated squares (whole nominal cycles), which they then
        continue from.

        The squares swing at twice the mains frequency by their full mean; a band-pass started from a
        constant would ring on that swing, for seconds of Pinst far above 1. So its states start at the
        constant (the mean: the 0.05 Hz high-pass and the 1-min reference settle on it) and then run over
        ``head`` repeated for PRIME_S, enough for the 35 Hz low-pass and the weighting to forget how they
        started; the last copy ends where the signal goes on, so measuring resumes after ``head`` without a
        jump. Copies join exactly at the nominal frequency; off it, the small jumps between them would stay
        in the 300 ms smoothing for seconds, so that starts from zero after the priming (as the standard's
        flickermeter starts), and WARMUP_S covers its rise."""
        mean = head.mean(axis=0)
        mean = np.where(mean > 0, mean, 1.0)
        self._zref = np.zeros((1, 2, self.channels))
        self._zref[0, 0] = self._adapt * mean
        self._zchain = sosfilt_zi(self._chain)[:, :, None] * mean[None, None, :]
        prime = np.tile(head, (max(1, int(np.ceil(PRIME_S * self.rate / head.shape[0]))), 1))
        _, self._zchain = _sosfilt(self._chain, prime, self._zchain)
        self._zsmooth = np.zeros((1, 2, self.channels))
        self._started = True
        self._warm = int(WARMUP_S * self.rate)

    def _classify(self, pinst: np.ndarray, t_ns: np.ndarray) -> list[PstInterval]:
        n, stride = pinst.shape[0], self.stride
        # every stride-th decimated sample, continuing the count across blocks, from the first past the warm-up
        first = (-self._phase) % stride
        self._phase = (self._phase + n) % stride
        skip = min(self._warm, n)
        self._warm -= skip
        if first < skip:
            first += -(-(skip - first) // stride) * stride
        out: list[PstInterval] = []
        if first >= n:
            return out
        taken, times = pinst[first::stride], t_ns[first::stride]
        # the interval of each (its tick), as runs of equal ticks: one run when the earliest and the latest share it
        # (the usual case: the floor division is monotonic)
        tick_lo, tick_hi = times.min() // self.interval_ns, times.max() // self.interval_ns
        if tick_lo == tick_hi:
            runs = [(taken.shape[0], int(tick_lo))]
        else:
            ticks = (times // self.interval_ns).astype(np.int64)
            runs = [(k + 1, int(ticks[k])) for k in np.flatnonzero(np.diff(ticks)).tolist() + [ticks.shape[0] - 1]]
        lo = 0
        for hi, tick in runs:
            if self._tick is not None and tick != self._tick:
                out.append(self._close())
            self._tick = tick
            self._stats.append(taken[lo:hi].copy())
            lo = hi
        return out

    def flush(self) -> list[PstInterval]:
        """Measure what is queued and close the open interval (the end of a recording)."""
        out = self.drain()
        return out + ([self._close()] if self._tick is not None and self._stats else [])

    def _close(self) -> PstInterval:
        start = (self._tick or 0) * self.interval_ns
        x = np.concatenate(self._stats) if self._stats else np.zeros((0, self.channels))
        self._stats = []
        covered = x.shape[0] * self.stride / self.rate
        enough = covered >= MIN_COVERAGE * self.interval_ns / NS_PER_S
        pst = np.array([pst_from_pinst(x[:, c]) if enough else math.nan for c in range(self.channels)])
        pmax = x.max(axis=0) if x.shape[0] else np.full(self.channels, np.nan)
        self.history[start] = self.last_pst = pst
        for old in [t for t in self.history if t < start - self.plt_count * self.interval_ns]:
            del self.history[old]
        period = self.plt_count * self.interval_ns
        if (start + self.interval_ns) % period == 0:
            self.last_plt = self.plt(start + self.interval_ns - period)
        return PstInterval(start, start + self.interval_ns, pst, pmax, covered)

    def pst(self, start_ns: int) -> np.ndarray:
        """Pst of the interval starting at ``start_ns`` (NaN when it has not closed or had too little Pinst)."""
        return self.history.get(int(start_ns), np.full(self.channels, np.nan))

    def plt(self, start_ns: int) -> np.ndarray:
        """Plt of the ``plt_count`` intervals from ``start_ns``: NaN unless every one has a Pst."""
        rows = [self.history.get(int(start_ns) + k * self.interval_ns) for k in range(self.plt_count)]
        if any(r is None for r in rows):
            return np.full(self.channels, np.nan)
        return plt_from_pst(np.stack([r for r in rows if r is not None]), self.plt_count)


class PipelineFlicker:
    """The pipeline's flickermeter: the three phase voltages (L-L in systems without a neutral) from the input
    samples, and the values it adds to the 1-s (``pinst``, ``pst``, ``plt``: the latest), 10-min (``pst``) and
    2-h (``plt``) intervals; absent phases are NaN."""

    def __init__(self, fs: float, s: MetrologySettings, matrix: np.ndarray, present: np.ndarray,
                 line_ref: bool) -> None:
        cols = V_LL if line_ref else V_LN
        self.matrix = np.ascontiguousarray(matrix[:, cols])
        self.absent = ~present[cols]
        self.meter = FlickerMeter(fs, s.nominal_frequency, s.flicker_lamp, channels=3)

    def process(self, x: np.ndarray, timestamp_ns: int) -> None:
        self.meter.process(x, timestamp_ns, self.matrix)

    def restart(self) -> None:
        self.meter.restart()

    def _masked(self, v: np.ndarray) -> np.ndarray:
        return np.where(self.absent, np.nan, v)

    def annotate_second(self, values: dict[str, np.ndarray]) -> None:
        m = self.meter
        values.update(pinst=self._masked(m.pinst), pst=self._masked(m.last_pst), plt=self._masked(m.last_plt))

    def annotate(self, item: Interval) -> None:
        if item.kind == "10min":
            self.meter.drain()      # the interval's last Pinst may still be queued
            item.values["pst"] = self._masked(self.meter.pst(item.start_ns))
        elif item.kind == "2h":
            item.values["plt"] = self._masked(self.meter.plt(item.start_ns))
