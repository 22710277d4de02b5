"""Per-cycle stage: the sums every later value is built from, one row per 512-sample cycle.

For each cycle: mean squares of its two halves (Urms(1/2) of IEC 61000-4-30 5.4.2 is the RMS
of a one-cycle window refreshed every half cycle), mean v*i per phase, the fundamental phasor of
every derived signal (one DFT bin of a synchronous cycle is exact), the peak, its duration and
frequency. Nothing here depends on the system type: that was settled by the wiring matrix.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metrology import _kernels
from metrology.resample import SyncResampler
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

    A batch's cycles are written into their rows in place (``claim``, ``columns``). A 10/12-cycle window
    and a 1-s interval are each a run of consecutive rows; closing one is a slice of views (``rows``),
    not a concatenation of copies. A row once written is never written again: ``drop`` copies the rows
    still needed to the front of new columns once the rows both intervals have moved past fill half the
    log, so the views handed out (a batch's own cycles among them) keep their values.
    """

    def __init__(self, capacity: int = 256, signals: int = N_SIGNALS, products: int = 3) -> None:
        self.n = 0
        self._capacity = capacity
        shapes = {"half_ms": (2, signals), "ms": (signals,), "vi": (products,), "fund": (signals,),
                  "peak": (signals,)}
        types: dict[str, type] = {"real": np.bool_, "fund": np.complex128}
        self._cols: dict[str, np.ndarray] = {name: np.empty((capacity, *shapes.get(name, ())), dtype=types.get(name, np.float64))
                      for name in CycleMeasures.__dataclass_fields__}
        self.columns = list(self._cols.values())     # in the order of the fields
        self._kernel_columns()

    @property
    def capacity(self) -> int:
        """Rows the columns hold."""
        return self._capacity

    def claim(self, m: int) -> int:
        """Rows for ``m`` cycles at the end of the log, for the caller to write into ``columns``; returns the first."""
        first = self.n
        if first + m > self._capacity:
            while self._capacity < first + m:
                self._capacity *= 2
            self._renew(0, first)
        self.n = first + m
        return first

    def _renew(self, lo: int, hi: int) -> None:
        """New columns of the log's capacity, holding rows lo .. hi - 1 of the present ones at the front."""
        cols: dict[str, np.ndarray] = {}
        for name, old in self._cols.items():
            cols[name] = np.empty((self._capacity, *old.shape[1:]), dtype=old.dtype)
            cols[name][:hi - lo] = old[lo:hi]
        self._cols = cols
        self.columns = list(cols.values())
        self._kernel_columns()

    def _kernel_columns(self) -> None:
        """The columns as the cycle_batch kernel takes them (``kernel_columns``: start, end, duration, freq, half_ms,
        ms, peak, vi, the fundamentals as float64 pairs) and the one it leaves to its caller (``both``)."""
        c = self._cols
        self.kernel_columns = (c["start"], c["end"], c["duration_s"], c["freq"], c["half_ms"], c["ms"], c["peak"],
                               c["vi"], c["fund"].view(np.float64))
        self.both = c["real"]

    def rows(self, lo: int, hi: int) -> CycleMeasures:
        c = self.columns
        return CycleMeasures(c[0][lo:hi], c[1][lo:hi], c[2][lo:hi], c[3][lo:hi], c[4][lo:hi], c[5][lo:hi],
                             c[6][lo:hi], c[7][lo:hi], c[8][lo:hi], c[9][lo:hi])

    def drop(self, k: int) -> int:
        """Rows before ``k`` are no longer needed. They are forgotten (row ``k`` becomes row 0 of new columns)
        once they fill half the log; returns how many rows were forgotten."""
        if k <= 0 or 2 * k < self._capacity:
            return 0
        k = min(k, self.n)
        self._renew(k, self.n)
        self.n -= k
        return k


class CycleStage:
    def __init__(self, matrix: np.ndarray, samples_per_cycle: int, sample_rate_hz: float) -> None:
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float64)
        self.spc = samples_per_cycle
        self.fs = sample_rate_hz
        # what the C kernel takes besides the batch, made once: bin 1's cosine and sine, the scalars
        theta = 2 * np.pi * np.arange(samples_per_cycle) / samples_per_cycle
        self._cos, self._sin = np.cos(theta), np.sin(theta)
        self._kernel_scalars = (samples_per_cycle, self.matrix.shape[1], V_LN.start, I_PH.start, 3)
        self._kernel_limits = (float(sample_rate_hz), float(REPORT_MIN_HZ), float(REPORT_MAX_HZ))

    def measure(self, resampler: SyncResampler, log: CycleLog) -> tuple[np.ndarray, int, int] | None:
        """The cycles the resampler has ready, resampled and measured into new rows of ``log``: (their samples
        (m, 512, C), the first row, m), or None when no cycle is ready."""
        taken = resampler.take()
        if taken is None:
            return None
        buf, bounds, real, buf_start = taken
        m = bounds.shape[0] - 1
        samples = np.empty((m, self.spc, resampler.c))
        first = log.claim(m)
        # the durations and frequencies are those of the boundaries: (end - start) / fs, NaN unless reportable
        if _kernels.cycle_batch is _kernels.c_cycle_batch:
            # the C kernel itself (c_cycle_batch without its wrapper): every array here is C-contiguous float64, the
            # log's columns in the kernel's order; both boundaries measured crossings (bool) is the caller's
            spc, k, v0, i0, nvi = self._kernel_scalars
            _kernels._ckernels.cycle_batch(buf, bounds, real, resampler.delays, self.matrix, self._cos, self._sin,
                                           samples, *log.kernel_columns, buf.shape[0], resampler.c, m, spc, k, v0, i0,
                                           nvi, log.capacity, first, float(buf_start), *self._kernel_limits)
            np.logical_and(real[:-1], real[1:], out=log.both[first:first + m])
        else:
            _kernels.cycle_batch(buf, bounds, real, self.spc, buf_start, resampler.delays, self.matrix, V_LN.start,
                                 I_PH.start, 3, self.fs, REPORT_MIN_HZ, REPORT_MAX_HZ, samples, log.columns, first)
        return samples, first, m
