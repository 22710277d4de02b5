"""Per-cycle stage: the sums every later value is built from, one row per 512-sample cycle.

For each cycle: mean squares of its two halves (Urms(1/2) of IEC 61000-4-30 5.4.2 is the RMS
of a one-cycle window refreshed every half cycle), mean v*i per phase, the fundamental phasor of
every derived signal (one DFT bin of a synchronous cycle is exact), the peak, its duration and
frequency. Nothing here depends on the system type: that was settled by the wiring matrix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from metrology import _kernels
from metrology.resample import CycleBatch
from metrology.settings import REPORT_MAX_HZ, REPORT_MIN_HZ
from metrology.systems import I_PH, N_SIGNALS, V_LN


@dataclass
class CycleMeasures:
    start: np.ndarray       # (m,) absolute fractional sample index of the opening boundary
    end: np.ndarray         # (m,)
    duration_s: np.ndarray  # (m,)
    freq: np.ndarray        # (m,) Hz; NaN for free-running cycles or out of 42.5..69 Hz
    real: np.ndarray        # (m,) bool
    half_ms: np.ndarray     # (m, 2, 11) mean square of each half cycle
    ms: np.ndarray          # (m, 11) mean square of the cycle
    vi: np.ndarray          # (m, 3) mean v*i per phase (active power, harmonics included)
    fund: np.ndarray        # (m, 11) complex RMS phasor of the fundamental (cosine reference)
    peak: np.ndarray        # (m, 11) max |x|

    @property
    def count(self) -> int:
        return int(self.start.shape[0])

    def take(self, sl: slice) -> CycleMeasures:
        return CycleMeasures(*(getattr(self, f)[sl] for f in self.__dataclass_fields__))

    @staticmethod
    def concat(parts: list[CycleMeasures]) -> CycleMeasures:
        if len(parts) == 1:
            return parts[0]
        return CycleMeasures(*(np.concatenate([getattr(p, f) for p in parts])
                               for f in CycleMeasures.__dataclass_fields__))


class CycleLog:
    """The cycles not yet consumed by every interval, one preallocated column per field.

    A 10/12-cycle window and a 1-s interval are each a run of consecutive rows; closing one is a
    slice of views (``rows``), not a concatenation of copies. ``drop`` moves the rows still needed
    to the front once the rows both intervals have moved past fill half the log.
    """

    def __init__(self, capacity: int = 256) -> None:
        self.n = 0
        self._cols: dict[str, np.ndarray] = {}
        self._list: list[np.ndarray] = []
        self._capacity = capacity

    def append(self, cm: CycleMeasures) -> int:
        """Add the rows of ``cm``; returns the row index of its first cycle."""
        m = cm.count
        if not self._cols or self.n + m > self._capacity:
            self._grow(cm, self.n + m)
        first = self.n
        for col, part in zip(self._list, (cm.start, cm.end, cm.duration_s, cm.freq, cm.real, cm.half_ms, cm.ms, cm.vi,
                                          cm.fund, cm.peak)):
            col[first:first + m] = part
        self.n += m
        return first

    def _grow(self, like: CycleMeasures, need: int) -> None:
        while self._capacity < need:
            self._capacity *= 2
        cols = {}
        for name in CycleMeasures.__dataclass_fields__:
            a = getattr(like, name)
            cols[name] = np.empty((self._capacity, *a.shape[1:]), dtype=a.dtype)
            if name in self._cols:
                cols[name][:self.n] = self._cols[name][:self.n]
        self._cols = cols
        self._list = [cols[name] for name in CycleMeasures.__dataclass_fields__]    # in the order of the fields

    def rows(self, lo: int, hi: int) -> CycleMeasures:
        c = self._list
        return CycleMeasures(c[0][lo:hi], c[1][lo:hi], c[2][lo:hi], c[3][lo:hi], c[4][lo:hi], c[5][lo:hi],
                             c[6][lo:hi], c[7][lo:hi], c[8][lo:hi], c[9][lo:hi])

    def drop(self, k: int) -> int:
        """Rows before ``k`` are no longer needed. They are forgotten (row ``k`` becomes row 0) once they
        fill half the log, or when they are all the rows; returns how many rows were forgotten."""
        rest = self.n - k
        if k <= 0 or (rest > 0 and 2 * k < self._capacity):
            return 0
        if rest > 0:
            for col in self._list:
                col[:rest] = col[k:self.n]
        self.n = max(rest, 0)
        return k


class CycleStage:
    def __init__(self, matrix: np.ndarray, samples_per_cycle: int, sample_rate_hz: float) -> None:
        self.matrix = np.ascontiguousarray(matrix)
        self.spc = samples_per_cycle
        self.fs = sample_rate_hz

    def process(self, batch: CycleBatch) -> CycleMeasures:
        half_ms, ms, peak, vi, fund = _kernels.cycle_stats(batch.samples, self.matrix, V_LN.start, I_PH.start, 3)
        duration = batch.end - batch.start
        duration /= self.fs
        freq = np.divide(1.0, duration)
        keep = freq >= REPORT_MIN_HZ
        keep &= freq <= REPORT_MAX_HZ
        keep &= batch.real
        np.copyto(freq, math.nan, where=np.logical_not(keep))
        assert half_ms.shape[1:] == (2, N_SIGNALS)
        return CycleMeasures(batch.start, batch.end, duration, freq, batch.real, half_ms, ms, vi, fund, peak)
