"""Voltage transients: each sample against the same sample one cycle earlier (JEMStar II transient trigger).

The pipeline's resampled cycles hold exactly 512 samples per cycle, so sample ``s`` of a cycle and sample ``s``
of the cycle before are one cycle apart at any frequency. A transient is ``consecutive`` samples in a row whose
difference exceeds the threshold (in V, at the primary); after one, the channel does not trigger again for
``holdoff_halves`` half cycles (the JEMStar's "reset", 120 half cycles by default).

A transient is a disturbance the waveform comes back from. A step in the RMS value (the start or end of a dip,
swell or interruption, an RVC) also makes each sample differ from the cycle before, but the difference stays:
the cycle after compared with the cycle before still differs by more than the threshold on the same samples.
Such a run is not a transient (the event flagging reports it as what it is), it starts no hold-off, and the
decision waits for the next cycle (it may come in the next batch).

The comparison holds while the cycles are equally long. When the tracker's cycle length jumps (its reference
zero crossing moves as a phase dips), a steady waveform resampled over a cycle ``dL`` longer than the period
``T`` (the median of the last ``PERIOD_CYCLES`` cycles) moves by up to ``2 pi peak |dL| / T`` against the cycle
before: that much is added to the threshold of such a cycle, so a steady phase does not trigger when another
one dips.
"""
from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass

import numpy as np

from metrology import _kernels
from metrology.events import PqEvent

PERIOD_CYCLES = 9          # cycles whose median length is the period the time-base slack is measured from
# the screen (cycle_change) sums the inputs in its own order, which may round differently from the matrix
# product in the last bits: a batch whose largest change comes this close to the threshold is derived in full
SCREEN_MARGIN = 1e-9


@dataclass(frozen=True)
class TransientSettings:
    enabled: bool = True
    threshold_v: float = 23.0           # 10 % of a 230 V Udin (JEMStar example: 10 V secondary on 120 V)
    consecutive: int = 3                # JEMStar default filter: 3 samples
    holdoff_halves: int = 120           # JEMStar default reset: 120 half cycles


class TransientDetector:
    def __init__(self, settings: TransientSettings, names: tuple[str, ...], udin: float) -> None:
        self.s = settings
        self.names = names
        self.udin = udin
        self.count = 0
        self._matrix: np.ndarray | None = None
        self._inputs, self._weights = np.zeros(0, dtype=np.intp), np.zeros((0, len(names)))
        # the screen's outputs: the change of each cycle, one array per batch size (a batch has a few cycles), and
        # two arrays for the last cycle, taken in turn (the one not written holds the cycle before)
        self._change: dict[int, np.ndarray] = {}
        self._last: list[np.ndarray] = []
        self.restart()

    def restart(self) -> None:
        self.prev: np.ndarray | None = None        # (512, channels) the last cycle seen
        self._prev_t: np.ndarray | None = None      # the same, signal by signal (channels, 512), C-contiguous
        self.lengths = np.zeros(0)                 # the last cycles' lengths (samples), oldest first
        # the first and last sample index of the quiet batches' cycles since, not yet joined to the lengths: each
        # batch holds a cycle at least, so the last PERIOD_CYCLES batches hold every length used
        self._spans: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=PERIOD_CYCLES)
        # runs in the batch's last cycle that wait for the next one: (channel, samples of the run in that cycle,
        # the cycle before at those samples,
        # the trigger's sample index and event, the hold-off it starts)
        self.pending: list[tuple[int, np.ndarray, np.ndarray, float, PqEvent, float]] = []
        self.run = np.zeros(len(self.names), dtype=np.int64)     # exceeding samples in a row at the batch end
        self._run_zero = True                      # every channel's run is 0
        self.quiet_until = np.full(len(self.names), -np.inf)     # sample index before which a channel is held off

    def process_inputs(self, x: np.ndarray, matrix: np.ndarray, start_index: np.ndarray, end_index: np.ndarray,
                       start_ns: np.ndarray, end_ns: np.ndarray, out: list) -> None:
        """``process`` of the voltages ``x @ matrix`` (x: (m, 512, C) resampled inputs, matrix (C, channels)).
        They are derived in full only when a sample may exceed the threshold: ``_kernels.cycle_change`` screens
        the batch (the largest change of a voltage from one cycle to the next, and the last cycle, which the
        next batch compares with), and a quiet batch needs nothing else but its first cycle when a decision was
        left from the last batch."""
        m = x.shape[0]
        if not self.s.enabled or m == 0:
            return
        if self._matrix is not matrix:          # the inputs the voltages use, and their rows of the matrix
            self._matrix, self._inputs = matrix, np.flatnonzero(np.any(matrix != 0, axis=1))
            self._weights = np.ascontiguousarray(matrix[self._inputs])
        change = self._change.get(m)
        if change is None:
            change = self._change[m] = np.empty(m)
        shape = (matrix.shape[1], x.shape[1])
        if not self._last or self._last[0].shape != shape:
            self._last = [np.empty(shape), np.empty(shape)]
        last = self._last[0] if self._prev_t is not self._last[0] else self._last[1]
        # the largest change of the batch (never NaN: the screen counts a NaN difference as 0)
        if _kernels.cycle_change(x, matrix, self._prev_t, change, last) > self.s.threshold_v * (1 - SCREEN_MARGIN):
            self.process(_derive(x, self._inputs, self._weights), start_index, end_index, start_ns, end_ns, out)
            return
        self._spans.append((start_index, end_index))
        if self.pending:
            self._settle(_derive(x[:1], self._inputs, self._weights)[0], out)
        self.prev, self._prev_t = last.T, last
        if not self._run_zero:
            self.run[:] = 0
            self._run_zero = True

    def process(self, v: np.ndarray, start_index: np.ndarray, end_index: np.ndarray, start_ns: np.ndarray,
                end_ns: np.ndarray, out: list) -> None:
        """``v`` (m, 512, channels): resampled voltages of ``m`` cycles with their first/last sample index and
        clock time. Appends a ``PqEvent`` of kind 'transient' per trigger, once the cycle after it shows that the
        waveform came back."""
        m, spc, c = v.shape
        if not self.s.enabled or m == 0:
            return
        self._join_spans()
        prev = v[:1] if self.prev is None else self.prev[None]
        hist = np.concatenate((prev, v))           # hist[j]: the cycle before batch cycle j
        known, n0 = np.concatenate((self.lengths, end_index - start_index)), self.lengths.size
        self.lengths = known[-PERIOD_CYCLES:]
        self._settle(v[0], out)
        diff = np.abs(v - hist[:-1])
        if self.prev is None:
            diff[0] = 0.0
        self._prev_t = np.ascontiguousarray(v[-1].T)
        self.prev = self._prev_t.T
        over = diff > self.s.threshold_v
        if over.any():          # the slack only raises the threshold: worked out when something exceeds it
            over &= diff > self.s.threshold_v + self._slack(hist, known, n0, m)[:, None, :]
        over = over.reshape(m * spc, c)
        if not over.any():
            self.run[:] = 0
            self._run_zero = True
            return
        flat = diff.reshape(m * spc, c)
        frac = np.arange(spc) / spc
        index = (start_index[:, None] + (end_index - start_index)[:, None] * frac).reshape(-1)
        ns = (start_ns[:, None] + (end_ns - start_ns)[:, None] * frac).reshape(-1)
        half_samples = float(np.mean(end_index - start_index)) / 2
        idx = np.arange(m * spc)
        for ch in range(c):
            o = over[:, ch]
            # length of the run of exceeding samples ending at each sample (carried over from the last batch)
            last_below = np.maximum.accumulate(np.where(o, -1, idx))
            run = np.where(last_below < 0, idx + 1 + self.run[ch], idx - last_below)
            for k in np.flatnonzero(o & (run == self.s.consecutive)).tolist():    # each run reaches it once
                if index[k] < self.quiet_until[ch]:
                    continue
                cycle, at = divmod(k, spc)
                samples = np.arange(max(at - self.s.consecutive + 1, 0), at + 1)
                ev = self._event(ch, k, flat, index, ns)
                hold = index[k] + self.s.holdoff_halves * half_samples
                if cycle + 1 < m:
                    if self._returns(v[cycle + 1, samples, ch], hist[cycle, samples, ch]):
                        self._emit(ev, ch, hold, out)
                else:
                    self.pending.append((ch, samples, hist[cycle, samples, ch].copy(), index[k], ev, hold))
            self.run[ch] = int(run[-1]) if o[-1] else 0
        self._run_zero = not self.run.any()

    def _join_spans(self) -> None:
        """``lengths`` with the lengths of the quiet batches since it was last brought up to date."""
        if self._spans:
            self.lengths = np.concatenate((self.lengths, *[end - start for start, end in self._spans]))[-PERIOD_CYCLES:]
            self._spans.clear()

    def _slack(self, hist: np.ndarray, known: np.ndarray, n0: int, m: int) -> np.ndarray:
        """(m, channels) V added to the threshold of each batch cycle for its time base (module docstring):
        ``hist`` (m + 1, 512, channels) the cycle before the batch and the batch, ``known`` the lengths of the
        cycles before the batch (``n0`` of them) and of the batch's ``m``, in samples."""
        dev = np.empty(m)
        for j in range(m):
            seen = known[max(0, n0 + j - PERIOD_CYCLES + 1):n0 + j + 1]
            period = float(np.median(seen))
            pair = known[max(0, n0 + j - 1):n0 + j + 1]
            dev[j] = float(np.abs(pair - period).max()) / period if period > 0 else 0.0
        peak = np.abs(hist).max(axis=1)                                  # (m + 1, channels)
        return 2 * np.pi * dev[:, None] * np.maximum(peak[:-1], peak[1:])

    def _returns(self, after: np.ndarray, before: np.ndarray) -> bool:
        """The cycle after the run is back where the cycle before it was (within half the threshold) on the run's
        samples; a step stays about as far off as it triggered."""
        return bool((np.abs(after - before) <= self.s.threshold_v / 2).all())

    def _settle(self, following: np.ndarray, out: list) -> None:
        """Decide the runs of the last batch's last cycle with ``following`` (512, channels), the cycle after."""
        pending, self.pending = self.pending, []
        for ch, samples, before, at, ev, hold in pending:
            if at >= self.quiet_until[ch] and self._returns(following[samples, ch], before):
                self._emit(ev, ch, hold, out)

    def _emit(self, ev: PqEvent, ch: int, hold: float, out: list) -> None:
        self.count += 1
        out.append(dataclasses.replace(ev, number=self.count))
        self.quiet_until[ch] = hold

    def _event(self, ch: int, k: int, diff: np.ndarray, index: np.ndarray, ns: np.ndarray) -> PqEvent:
        peak = float(diff[k:k + 64, ch].max())
        first = k - self.s.consecutive + 1
        at_ns, at = int(ns[max(first, 0)]), float(index[max(first, 0)])
        return PqEvent("transient", at_ns, at_ns, at, (self.names[ch],), self.names[ch], (peak,),
                       peak / self.udin * 100.0, 0, peak_v=peak)


def _derive(x: np.ndarray, inputs: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(m, 512, K) voltages ``x[:, :, inputs] @ matrix`` of the (m, 512, C) inputs."""
    sub = x[:, :, inputs]
    return (sub.reshape(-1, sub.shape[2]) @ matrix).reshape(x.shape[0], x.shape[1], -1)
