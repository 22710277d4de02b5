"""Synchronous resampling: every cycle between two tracked boundaries becomes exactly 512 samples.

Sample ``j`` of cycle ``k`` is the input at ``b[k] + j * (b[k+1] - b[k]) / 512`` (plus a fixed
per-input offset that implements PT/CT phase-angle correction), interpolated by a 6-point
(5th-order) Lagrange interpolator on the 32 kSPS stream. Because each cycle is stretched between
its own measured crossings, a window of whole resampled cycles is synchronous even while the
frequency ramps, and the DFT bins of a 10/12-cycle window fall exactly on the harmonics.

Passband error of the interpolator at 32 kSPS (``passband_error`` computes it; the unit tests
check these bounds), as |H - 1| over all fractional positions:

=====================  ==================  ===========================
frequency              worst position      mean over positions
=====================  ==================  ===========================
60 Hz (fundamental)    < 1e-13             < 1e-13
420 Hz (7th at 60 Hz)  < 1.5e-9            < 1e-9
2048 Hz (31st at 65)   < 2.1e-5            < 1.3e-5
4095 Hz (63rd at 65)   < 1.2e-3 (0.12 %)   < 7.7e-4 (0.077 %), < 0.009°
=====================  ==================  ===========================

Content between 11.5 and 16 kHz (above the output Nyquist frequency at 45 Hz) folds to 7..11.5
kHz, outside the harmonic band; the ADE9000's sinc4 filter has removed most of it already.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from metrology import _kernels
from metrology._kernels.reference import LAGRANGE_OFFSETS, lagrange_weights
from metrology.frequency import Boundaries

TAPS_AFTER = int(LAGRANGE_OFFSETS[-1]) + 1   # input samples needed beyond a position
TAPS_BEFORE = -int(LAGRANGE_OFFSETS[0])


def passband_error(freq_hz: float, sample_rate_hz: float, positions: int = 256) -> tuple[float, float]:
    """(worst, mean) |H - 1| of the interpolator at ``freq_hz``, over ``positions`` fractional delays."""
    mu = (np.arange(positions) + 0.5) / positions
    w = lagrange_weights(mu)
    nu = freq_hz / sample_rate_hz
    h = (w * np.exp(-2j * math.pi * nu * (LAGRANGE_OFFSETS[None, :] - mu[:, None]))).sum(axis=1)
    return float(np.abs(h - 1).max()), float(abs(h.mean() - 1))


@dataclass
class CycleBatch:
    """Resampled cycles, ready for the per-cycle stage."""
    samples: np.ndarray   # (m, 512, C) float64
    start: np.ndarray     # (m,) fractional absolute sample index of each cycle's first boundary
    end: np.ndarray       # (m,) ... and of its closing boundary
    real: np.ndarray      # (m,) both boundaries are measured crossings (frequency is valid)

    @property
    def count(self) -> int:
        return int(self.start.shape[0])


class SyncResampler:
    def __init__(self, n_channels: int, samples_per_cycle: int, delays: np.ndarray | None = None) -> None:
        self.c = n_channels
        self.spc = samples_per_cycle
        self.delays = np.zeros(n_channels) if delays is None else np.asarray(delays, dtype=np.float64)
        self.reach = float(np.abs(self.delays).max()) + TAPS_AFTER + 1
        self.restart()

    def set_delays(self, delays: np.ndarray) -> None:
        """New per-channel delays (samples), e.g. after a recalibration; applies from the next cycle."""
        self.delays = np.asarray(delays, dtype=np.float64)
        self.reach = float(np.abs(self.delays).max()) + TAPS_AFTER + 1

    def restart(self) -> None:
        self._store = np.empty((0, self.c))   # buf is _store[_lo:_hi]: appended in place, moved down when full
        self._lo = self._hi = 0
        self.buf_start = 0              # absolute index of buf[0]
        # the pending boundaries, _times[_p0:_p1] (the first opens the next cycle), and whether each is a measured
        # crossing (1.0) or not (0.0): appended in place (``room``, ``added``), into new arrays when full
        self._times, self._real = np.empty(0), np.empty(0)
        self._p0 = self._p1 = 0

    @property
    def bounds(self) -> np.ndarray:
        """The pending boundaries; ``bounds[0]`` opens the next cycle."""
        return self._times[self._p0:self._p1]

    @property
    def real(self) -> np.ndarray:
        """Whether each pending boundary is a measured crossing (1.0) or not (0.0)."""
        return self._real[self._p0:self._p1]

    @property
    def buf(self) -> np.ndarray:
        return self._store[self._lo:self._hi]

    def push(self, x: np.ndarray, first_index: int) -> None:
        self.reserve(x.shape[0], first_index)[:] = x

    def reserve(self, n: int, first_index: int) -> np.ndarray:
        """The buffer's rows for the ``n`` samples from ``first_index`` on, for the caller to fill before the next
        ``take`` (the tracker's pass copies a batch's rows there as it reads them): ``push`` without the copy."""
        if self._hi == self._lo:
            self.buf_start = first_index
            self._lo = self._hi = 0
        if self._hi + n > self._store.shape[0]:
            kept = self._hi - self._lo
            store = self._store
            if kept + n > store.shape[0]:
                store = np.empty((2 * (kept + n), self.c))
            store[:kept] = self._store[self._lo:self._hi]
            self._store, self._lo, self._hi = store, 0, kept
        hi = self._hi
        self._hi = hi + n
        return self._store[hi:hi + n]

    def room(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Space for ``n`` boundaries after the pending ones: (times, flags) arrays of at least ``n`` items, for the
        caller to fill from the start (the tracker's pass writes its boundaries there) and count with ``added``."""
        p1 = self._p1
        if p1 + n > self._times.shape[0]:
            p0 = self._p0
            kept = p1 - p0
            size = 2 * (kept + n)
            times, real = np.empty(size), np.empty(size)
            times[:kept], real[:kept] = self._times[p0:p1], self._real[p0:p1]
            self._times, self._real, self._p0, self._p1 = times, real, 0, kept
            p1 = kept
        return self._times[p1:], self._real[p1:]

    def added(self, count: int) -> None:
        """The first ``count`` items of the last ``room`` were filled: pending boundaries now."""
        self._p1 += count

    def add_boundaries(self, b: Boundaries) -> None:
        m = b.index.shape[0]
        times, real = self.room(m)
        times[:m], real[:m] = b.index, b.real
        self._p1 += m

    def take(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
        """Every cycle whose closing boundary and interpolation taps are in the buffer, taken: (the buffer,
        their m + 1 boundaries, whether each is a measured crossing (1.0) or not (0.0), the buffer's first
        absolute index), the buffer valid until the next ``push`` or ``reserve`` and the boundaries until the next
        ``room`` or ``add_boundaries``; None when no cycle is complete."""
        p0, p1 = self._p0, self._p1
        if p1 - p0 < 2:
            return None
        available, reach = self.buf_start + (self._hi - self._lo), self.reach
        n, last = 0, 0.0
        for b in self._times[p0 + 1:p1].tolist():
            if not b + reach < available:
                break
            n += 1
            last = b
        if n == 0:
            return None
        buf, buf_start = self.buf, self.buf_start
        p = self._p0 = p0 + n
        bounds, real = self._times[p0:p + 1], self._real[p0:p + 1]
        # keep what the next cycle's left taps need
        keep_from = int(math.floor(last - reach - TAPS_BEFORE)) - buf_start
        if keep_from > 0:
            keep_from = min(keep_from, self._hi - self._lo)
            self._lo += keep_from
            self.buf_start += keep_from
        return buf, bounds, real, buf_start

    def take_cycles(self) -> CycleBatch | None:
        """Every cycle whose closing boundary and interpolation taps are in the buffer, resampled."""
        taken = self.take()
        if taken is None:
            return None
        buf, b, r, buf_start = taken
        b, r = b.copy(), r.copy()        # the batch keeps them: the pending arrays are filled again
        out = _kernels.resample_cycles(buf, b, self.spc, buf_start, self.delays)
        return CycleBatch(out, b[:-1], b[1:], (r[:-1] != 0) & (r[1:] != 0))
