"""Frequency tracking: cycle boundaries at the fundamental's rising zero crossings, and the 10-s frequency.

``CycleTracker`` turns the 32 kSPS reference voltage (``Wiring.reference``) into a stream of
cycle boundaries, in fractional sample indices. The reference is band-limited first (4th-order
Butterworth low-pass at 150 Hz: the 5th harmonic is down 48 dB). There is deliberately no
high-pass: an ADC offset moves every rising crossing by the same time, so periods stay exact,
whereas a high-pass would make the delay depend on frequency (18 us/Hz for 5 Hz, 2nd order) and
take half a second to settle. Its rising zero crossings are located by linear interpolation (the curvature
of a sine is zero at its crossing, so the interpolation error is far below a nanosecond), and the
filter's phase delay at the tracked frequency is subtracted, so a boundary is the crossing of the
*input's* fundamental, not of the filtered signal. Because the delay is recomputed at the tracked
frequency, a frequency ramp does not bias the period.

Without voltage (reference below ``present_peak``) the tracker free-runs on the last good period
(holdover) and marks those boundaries virtual: currents and energy are still measured over
contiguous windows, with no blind time, and the frequency of those cycles is NaN.

After a restart (start-up, or a gap in the samples) the first boundary is the first real crossing
once the filter has settled: a grid of virtual boundaries laid from the first sample would meet the
real crossings at an arbitrary phase and make one cycle of 0.5 to 1.5 periods, whose fundamental
(one DFT bin) and so reactive power are wrong. The samples before that first crossing belong to no
cycle: across a gap they join the gap, whose energy the chip's accumulators supply. Only when no
real crossing comes (no voltage) does the tracker free-run from the first sample.

A short gap (up to ``BRIDGE_MAX_S``, with the tracker locked) does not restart the filter: the lost
reference samples are replaced, for the filter alone, by the reference one period earlier, so the
filter runs on without a start-up transient and the first crossing after the gap is a boundary at
once. Nothing is measured on those samples: the cycles around the gap are still dropped.

``TenSecondFrequency`` is the IEC 61000-4-30 (5.1) value: the number of whole cycles inside a
10-s clock interval divided by their cumulative duration.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Generic, Protocol, TypeVar

import numpy as np

from metrology import _kernels
from metrology.iir import butter_sos
from metrology.settings import TRACK_MAX_HZ, TRACK_MIN_HZ

LOWPASS_HZ = 150.0
LOWPASS_ORDER = 4
SETTLE_S = 0.04              # filter start-up transient: crossings ignored this long after a (re)start
VIRTUAL_AFTER_PERIODS = 1.6  # free-run once no crossing came this many periods after the last boundary
MIN_REAL_AFTER_VIRTUAL = 0.5  # a real crossing this soon after a virtual boundary waits for the next one
MIN_PERIOD_RATIO = 0.75      # a crossing sooner than this fraction of the last period is noise
MAX_PERIOD_STEP = 0.02       # a period differing more from the last one is not trusted (2 %: 1 Hz at 50)
DELAY_STEP_HZ = 0.01         # the filter delay is tabulated at this step and interpolated linearly
BRIDGE_MAX_S = 0.05          # a gap up to this long is bridged for the reference filter (no settling after it)


class BoundarySink(Protocol):
    """What the tracker writes its boundaries into (``metrology.resample.SyncResampler``): ``room`` for ``n`` of them
    as (times, flags) arrays to fill from the start, ``added`` the count filled, ``add_boundaries`` a few more."""

    def room(self, n: int) -> tuple[np.ndarray, np.ndarray]: ...

    def added(self, count: int) -> None: ...

    def add_boundaries(self, b: Boundaries) -> None: ...


def reference_filter(sample_rate_hz: float) -> np.ndarray:
    return butter_sos(LOWPASS_ORDER, LOWPASS_HZ, sample_rate_hz, "lowpass")


def phase_delay_samples(sos: np.ndarray, freq_hz: float, sample_rate_hz: float) -> float:
    """Phase delay of the SOS cascade at ``freq_hz``, in samples (positive = output lags)."""
    return float(_phase_delays(sos, np.array([freq_hz]), sample_rate_hz)[0])


def _phase_delays(sos: np.ndarray, freq_hz: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    w = 2 * math.pi * freq_hz[:, None] / sample_rate_hz
    z1 = np.exp(-1j * w)
    z2 = z1 * z1
    h = (sos[:, 0] + sos[:, 1] * z1 + sos[:, 2] * z2) / (sos[:, 3] + sos[:, 4] * z1 + sos[:, 5] * z2)
    return -np.sum(np.angle(h), axis=1) / w[:, 0]


@dataclass
class Boundaries:
    """Cycle boundaries found by one ``CycleTracker.process`` call."""
    index: np.ndarray   # float64 fractional absolute sample index
    real: np.ndarray    # bool: a measured zero crossing (False: free-running)


T = TypeVar("T")


class _StateItem(Generic[T]):
    """A tracker's state value that is an item of its ``_state`` array, converted on the way in and out."""

    def __init__(self, index: int, out: Callable[[float], T], into: Callable[[T], float]) -> None:
        self.index, self.out, self.into = index, out, into

    def __get__(self, tracker: CycleTracker, owner: type | None = None) -> T:
        return self.out(float(tracker._state[self.index]))

    def __set__(self, tracker: CycleTracker, value: T) -> None:
        tracker._state[self.index] = self.into(value)


class CycleTracker:
    def __init__(self, sample_rate_hz: float, nominal_hz: float, present_peak: float) -> None:
        self.fs = sample_rate_hz
        self.nominal_period = sample_rate_hz / nominal_hz
        self.present_peak = present_peak
        self.sos = reference_filter(sample_rate_hz)
        self.min_period = sample_rate_hz / TRACK_MAX_HZ
        self.max_period = sample_rate_hz / TRACK_MIN_HZ
        self.history_len = int(self.max_period) + 4     # the reference's last period, for a bridge
        self.max_delay = phase_delay_samples(self.sos, TRACK_MIN_HZ, sample_rate_hz)
        # the delay is smooth in frequency: a 10 mHz table with linear interpolation is exact to < 1e-9 samples
        self._delay_f0 = TRACK_MIN_HZ - 1.0
        self._delay_table = _phase_delays(self.sos, np.arange(self._delay_f0, TRACK_MAX_HZ + 1.0, DELAY_STEP_HZ),
                                          sample_rate_hz)
        # track_crossings' parameters: [0] and [5] (the block's first index, settle_until) change per block
        self._params = np.array([0.0, self._delay_f0, DELAY_STEP_HZ, sample_rate_hz, present_peak, math.nan,
                                 self.min_period, self.max_period, MIN_PERIOD_RATIO, MAX_PERIOD_STEP,
                                 MIN_REAL_AFTER_VIRTUAL])
        # the state the C pass (track_block) carries from block to block, in arrays it updates in place: period,
        # last boundary (NaN: none), last_real, reacquiring, and how many filtered samples the tail holds
        self._state = np.zeros(5)
        self.tail_len = int(self.max_period // 2) + 2
        self._tail = np.zeros(self.tail_len)     # the last filtered samples, right-aligned (``tail``)
        self._rows = np.zeros(self.history_len)  # the inputs' last history_len rows, as the last block gave them
        self.period = self.nominal_period
        self.restart(None)

    # the state the C pass updates in place, as values: items 0..3 of ``_state``
    period = _StateItem(0, float, float)
    last = _StateItem[float | None](1, lambda v: None if math.isnan(v) else v,       # NaN: no boundary yet
                                    lambda v: math.nan if v is None else v)
    last_real = _StateItem(2, bool, float)
    reacquiring = _StateItem(3, bool, float)

    @property
    def tail(self) -> np.ndarray:
        """The last filtered samples (up to ``tail_len``): the next block's crossings may begin in them."""
        return self._tail[self.tail_len - int(self._state[4]):]

    @tail.setter
    def tail(self, value: np.ndarray) -> None:
        keep = value[-self.tail_len:]
        self._tail[self.tail_len - keep.shape[0]:] = keep
        self._state[4] = keep.shape[0]

    def restart(self, first_index: int | None) -> None:
        """Forget everything (after a gap or at start-up); the next block starts at ``first_index``."""
        self.zi = np.zeros((self.sos.shape[0], 2))
        self.tail = np.zeros(0)
        self._history = np.zeros(0)
        # the input rows and weights whose product ``history`` is, until a bridge or a short block asks for it
        self._history_inputs: tuple[np.ndarray, np.ndarray | None] | None = None
        self.next_index = first_index
        self.settle_until = None if first_index is None else first_index + SETTLE_S * self.fs
        self.resume_index = first_index     # where free-running starts if no real crossing comes
        self.last = None
        self.last_real = False
        self.reacquiring = True      # the period is kept: the first crossings' filter delay follows it

    def process(self, ref: np.ndarray, first_index: int, weights: np.ndarray | None = None,
                rows: np.ndarray | None = None) -> Boundaries:
        """Feed the reference signal for samples ``first_index ..``; return the boundaries now known.

        With ``weights``, ``ref`` is the (n, c) inputs and the reference is ``ref @ weights``. With ``rows`` (n, c),
        the pass that reads ``ref`` copies it there too (``SyncResampler.reserve``).
        """
        out = np.empty((2, ref.shape[0]))
        count = self._block(ref, first_index, weights, rows, out[0], out[1])
        found, real = out[0, :count], out[1, :count] != 0
        virtual = self._virtual(first_index + ref.shape[0])
        if not virtual:
            return Boundaries(found, real)
        return Boundaries(np.concatenate((found, virtual)), np.concatenate((real, np.zeros(len(virtual), bool))))

    def feed(self, ref: np.ndarray, first_index: int, weights: np.ndarray | None, rows: np.ndarray | None,
             resampler: BoundarySink) -> None:
        """``process``, the boundaries written straight into ``resampler``'s pending ones."""
        times, real = resampler.room(ref.shape[0])
        resampler.added(self._block(ref, first_index, weights, rows, times, real))
        period, last = self._state[:2].tolist()
        if not first_index + ref.shape[0] - self.max_delay - last <= VIRTUAL_AFTER_PERIODS * period:
            virtual = self._virtual(first_index + ref.shape[0])
            if virtual:
                resampler.add_boundaries(Boundaries(np.array(virtual), np.zeros(len(virtual), bool)))

    def _block(self, ref: np.ndarray, first_index: int, weights: np.ndarray | None, rows: np.ndarray | None,
               out_t: np.ndarray, out_real: np.ndarray) -> int:
        """The crossings of a block, into ``out_t`` and ``out_real`` (at least n items each); returns their count."""
        if first_index != self.next_index and not self.bridge(first_index):
            self.restart(first_index)
        n = ref.shape[0]
        self.next_index = first_index + n
        if self._rows.shape[1:] != ref.shape[1:]:
            self._rows = np.zeros((self.history_len,) + ref.shape[1:])
        # one C pass (reference.track_block): the filter forms the weighted sum sample by sample after the filtered
        # samples of the blocks before that the tail keeps (the last pair waits for the next block: the cubic
        # through yy[k-1..k+2] needs one sample more); then the rising crossings, with the peak of |y| over the
        # half cycle before each (is there a voltage?) and the root of the cubic through the four samples around
        # it: linear interpolation would leave up to 1 ns of grid-dependent error at 65 Hz with a 5th harmonic (a
        # few 1e-7 of the period), the cubic < 10 ps. The delay depends a little on frequency: each crossing's is
        # taken at the period just measured, so a ramp shifts every crossing alike and the period stays true
        # (reference.track_crossings: the rules)
        p = self._params
        p[0], p[5] = first_index, math.nan if self.settle_until is None else self.settle_until
        if weights is not None and rows is not None and _kernels.track_block is _kernels.c_track_block:
            # the pipeline's call: the C kernel itself (c_track_block without its wrapper)
            x = np.ascontiguousarray(ref, np.float64)
            count = _kernels._ckernels.track_block(
                x, np.ascontiguousarray(weights, np.float64), self.sos, self.zi, self._tail, self._rows, self._state,
                self._delay_table, p, out_t, out_real, rows, n, x.shape[1], self.sos.shape[0], self.tail_len,
                self.history_len, self._delay_table.shape[0], True, True)
        else:
            count = _kernels.track_block(ref, weights, self.sos, self.zi, self._tail, self._rows, self._state,
                                         self._delay_table, p, rows, out_t, out_real)[0].shape[0]
        # the history keeps the reference's last period, as the inputs it is made of while no bridge needs it
        if n >= self.history_len:
            self._history_inputs = (self._rows, weights)
        else:
            self._remember(ref if weights is None else ref @ weights)
        return count

    def _virtual(self, end_index: int) -> list[float]:
        """The virtual boundaries (free-running) due once the samples before ``end_index`` are in."""
        period, last = self._state[:2].tolist()
        end = end_index - self.max_delay
        if end - last <= VIRTUAL_AFTER_PERIODS * period:
            return []         # the usual case: no virtual boundary to add (NaN: no last)
        out_t: list[float] = []
        if (self.last is None and self.resume_index is not None and self.settle_until is not None
                and end - self.settle_until > VIRTUAL_AFTER_PERIODS * self.period):
            self.last, self.last_real = float(self.resume_index), False   # no voltage: free-run from the start
            out_t.append(float(self.resume_index))
        while self.last is not None and end - self.last > VIRTUAL_AFTER_PERIODS * self.period:
            self.last += self.period
            self.last_real = False
            out_t.append(self.last)
        return out_t

    @property
    def history(self) -> np.ndarray:
        """The last raw reference samples (for a bridge), ending at ``next_index``."""
        if self._history_inputs is not None:
            rows, weights = self._history_inputs
            self._history, self._history_inputs = rows.copy() if weights is None else rows @ weights, None
        return self._history

    def _remember(self, raw: np.ndarray) -> None:
        keep = self.history_len
        self._history = raw[-keep:].copy() if raw.shape[0] >= keep else np.concatenate((self.history, raw))[-keep:]
        self._history_inputs = None

    def bridge(self, first_index: int) -> bool:
        """The samples resume at ``first_index`` after a gap: run the filter over the reference one period
        earlier in place of the lost samples and go on (True), or say the gap cannot be bridged (False: too
        long, the indices went back, or the tracker was not locked on a real period)."""
        if self.next_index is None or not self.last_real:
            return False
        gap = first_index - self.next_index
        if gap <= 0 or gap > BRIDGE_MAX_S * self.fs or self.history.shape[0] < self.period + 2:
            return False
        hist_start = self.next_index - self.history.shape[0]
        n = np.arange(self.next_index, first_index, dtype=np.float64)
        back = np.ceil((n - (self.next_index - 1)) / self.period)       # whole periods back into the history
        src = n - back * self.period - hist_start
        fill = np.interp(src, np.arange(self.history.shape[0]), self.history)
        y, self.zi = _kernels.sosfilt(self.sos, fill, self.zi)
        self.tail = np.concatenate((self.tail, y))[-self.tail_len:]
        self._remember(fill)
        # crossings inside the bridge are not boundaries: the first one after it starts the next cycle
        self.next_index = first_index
        self.settle_until = float(first_index)
        self.resume_index = first_index
        self.last, self.last_real, self.reacquiring = None, False, True
        return True


class TenSecondFrequency:
    """IEC 61000-4-30 5.1: whole cycles inside each 10-s clock interval over their total duration.

    ``add`` takes cycles as (start, end) clock times in integer ns (for the interval test), their
    exact durations in s (from sample indices) and a validity flag; it returns the (interval start
    ns, frequency Hz) of each 10-s interval that the new cycles closed. An interval without a valid
    whole cycle gives NaN.

    A gap in the samples (``mark_gap``) does not restart the interval: the cycles measured on either
    side still count, the lost ones are missing from both the count and the duration, and the
    interval is flagged (IEC 61000-4-30 4.7: a value is kept and marked, never silently dropped). So is an
    interval with a cycle that ``add``'s ``event`` flags (a dip, swell or interruption in progress: 4.7 names
    frequency among the values such an event makes unreliable). ``flagged`` says whether the last closed
    interval was.
    """
    INTERVAL_NS = 10_000_000_000

    def __init__(self) -> None:
        self.interval: int | None = None
        self.count = 0
        self.duration_s = 0.0
        self._gap = False            # the open interval lost samples
        self._pending = False        # the interval of the next cycle follows a gap
        self.flagged = False

    def mark_gap(self) -> None:
        """Samples were lost: the open interval and the one that holds the next cycle are flagged."""
        self._gap = self.interval is not None
        self._pending = True

    def add(self, start_ns: np.ndarray, end_ns: np.ndarray, duration_s: np.ndarray,
            valid: np.ndarray, event: np.ndarray | None = None) -> list[tuple[int, float]]:
        flags = [False] * len(valid) if event is None else event.tolist()
        return self.add_lists(start_ns.tolist(), end_ns.tolist(), duration_s.tolist(), valid.tolist(), flags)

    def add_lists(self, start_ns: list[int], end_ns: list[int], duration_s: list[float], valid: list[bool],
                  event: list[bool]) -> list[tuple[int, float]]:
        """``add`` of cycles given as lists (what the pipeline has already made of a batch)."""
        step, interval = self.INTERVAL_NS, self.interval
        if (start_ns and interval is not None and not self._pending
                and interval <= min(start_ns) and max(start_ns) < interval + step):
            # the usual case: every cycle inside the open interval
            count, total, limit = self.count, self.duration_s, interval + step
            for e, d, ok in zip(end_ns, duration_s, valid):
                if ok and e <= limit:
                    count += 1
                    total += d
            self.count, self.duration_s = count, total
            self._gap |= any(event)
            return []
        out: list[tuple[int, float]] = []
        for s, e, d, ok, ev in zip(start_ns, end_ns, duration_s, valid, event):
            tick = int(s // self.INTERVAL_NS) * self.INTERVAL_NS
            if self.interval is None:
                self.interval = tick
            if tick != self.interval:
                out.append((self.interval, self._value()))
                self.flagged, self._gap = self._gap, False
                self.interval, self.count, self.duration_s = tick, 0, 0.0
            if self._pending:
                self._gap, self._pending = True, False
            self._gap |= bool(ev)
            if ok and e <= self.interval + self.INTERVAL_NS:
                self.count += 1
                self.duration_s += d
        return out

    def _value(self) -> float:
        return self.count / self.duration_s if self.count else math.nan


def dominant_frequency(x: np.ndarray, sample_rate_hz: float, lo_hz: float = TRACK_MIN_HZ,
                       hi_hz: float = TRACK_MAX_HZ) -> float | None:
    """The frequency of the strongest component of ``x`` between ``lo_hz`` and ``hi_hz`` (Hann window, zero
    padding and a parabolic fit on the log spectrum), or None when no component
    there holds a tenth of the signal's AC rms (no fundamental to follow)."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean() if len(x) else x
    if len(x) < 8 or not np.any(x):
        return None
    n_fft = max(1 << int(math.ceil(math.log2(len(x)))), 1 << 16)
    w = np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x * w, n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate_hz)
    band = np.flatnonzero((freqs >= lo_hz) & (freqs <= hi_hz))
    if not len(band):
        return None
    k = int(band[np.argmax(spec[band])])
    amplitude = 2 * spec[k] / w.sum()                      # peak amplitude of that component
    if amplitude / math.sqrt(2) < 0.1 * float(np.sqrt(np.mean(x * x))):
        return None
    if 0 < k < len(spec) - 1 and min(spec[k - 1], spec[k], spec[k + 1]) > 0:
        a, b, c = np.log(spec[k - 1:k + 2])
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom else 0.0
    else:
        shift = 0.0
    return float((k + shift) * sample_rate_hz / n_fft)
