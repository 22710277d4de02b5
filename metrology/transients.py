"""Voltage transients: each sample against the same sample one cycle earlier (JEMStar II transient trigger).

The pipeline's resampled cycles hold exactly 512 samples per cycle, so sample ``s`` of a cycle and sample ``s``
of the cycle before are one cycle apart at any frequency. A transient is ``consecutive`` samples in a row whose
difference exceeds the threshold (in V, at the primary); after one, the channel does not trigger again for
``holdoff_halves`` half cycles (the JEMStar's "reset", 120 half cycles by default).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metrology.events import PqEvent


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
        self.restart()

    def restart(self) -> None:
        self.prev: np.ndarray | None = None        # (512, channels) the last cycle seen
        self.run = np.zeros(len(self.names), dtype=np.int64)     # exceeding samples in a row at the batch end
        self.quiet_until = np.full(len(self.names), -np.inf)     # sample index before which a channel is held off

    def process(self, v: np.ndarray, start_index: np.ndarray, end_index: np.ndarray, start_ns: np.ndarray,
                end_ns: np.ndarray, out: list) -> None:
        """``v`` (m, 512, channels): resampled voltages of ``m`` cycles with their first/last sample index and
        clock time. Appends a ``PqEvent`` of kind 'transient' per trigger."""
        m, spc, c = v.shape
        if not self.s.enabled or m == 0:
            return
        prev = v[:1] if self.prev is None else self.prev[None]
        diff = np.abs(v - np.concatenate((prev, v[:-1])))
        if self.prev is None:
            diff[0] = 0.0
        self.prev = v[-1].copy()
        over = (diff > self.s.threshold_v).reshape(m * spc, c)
        if not over.any():
            self.run[:] = 0
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
                if index[k] >= self.quiet_until[ch]:
                    self._trigger(ch, k, flat, index, ns, out)
                    self.quiet_until[ch] = index[k] + self.s.holdoff_halves * half_samples
            self.run[ch] = int(run[-1]) if o[-1] else 0

    def _trigger(self, ch: int, k: int, diff: np.ndarray, index: np.ndarray, ns: np.ndarray, out: list) -> None:
        self.count += 1
        peak = float(diff[k:k + 64, ch].max())
        first = k - self.s.consecutive + 1
        at_ns, at = int(ns[max(first, 0)]), float(index[max(first, 0)])
        out.append(PqEvent("transient", at_ns, at_ns, at, (self.names[ch],), self.names[ch], (peak,),
                           peak / self.udin * 100.0, self.count, peak_v=peak))
