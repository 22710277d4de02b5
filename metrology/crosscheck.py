"""Cross-check of the two energy paths: the sample path (measured cycles) against the chip's accumulators.

Both paths see the same inputs through different arithmetic: the pipeline integrates resampled cycles, the
ADE9000 its own DSP. Over the frames both measured (a chip record's frame range intersected with the
measured cycles), the difference of their energies says whether either has drifted (a calibration that
no longer matches, a chip fault, a software error).

For every chip record, once the cycles around it are known: the sample path's energy is each overlapping
cycle's mean power times its overlap, the chip path's is the record's energy times the share of its frames
that the cycles cover. Each record's difference counts with the sign of the chip's energy, so that a path
reading 1 % high reads +1 % whichever way the energy flows, and the records of a sliding window (15 min by
default, on the records' own clock) add up to the energy-weighted mean of their relative differences:

    difference % = 100 x Σ sign(E_chip) (E_samples - E_chip) / Σ |E_chip|       (total W, var and VA)

An error that is a fixed offset rather than a proportion (a constant watt too many) raises delivered and
lowers received magnitudes, and cancels when both flow alike. The figure is NaN until the window holds
``min_common_s`` of common frames, and for a quantity whose mean flow is below ``min_flow`` (W, var or VA:
errors at no load are noise, not drift).

Pure computation: cycles and records are passed in with their frame indices; time comes from the records.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from metrology.cycle import CycleMeasures
from metrology.energy import S_PER_H
from metrology.power import compute_power
from metrology.settings import MetrologySettings
from metrology.systems import I_PH, V_LN, wiring

NS_PER_S = 1_000_000_000
QUANTITIES = ("wh", "varh", "vah")
WINDOW_S = 900.0                  # 15 min: the usual demand interval, long enough to average record-edge jitter
MIN_COMMON_S = 10.0               # record edges are located within 16 frames: 2 edges / 10 s is < 0.01 %
HISTORY_S = 30.0                  # cycles kept for records that arrive late (the chip reports ~1 s after)
MAX_PENDING = 600                 # records waiting for their cycles: 10 min of 1-s intervals


def cycle_flows(cm: CycleMeasures, settings: MetrologySettings) -> np.ndarray:
    """(m, 3) total W, var and VA of each cycle, as the pipeline's energy integrates them (primary units)."""
    present = np.asarray(wiring(settings.system_type).phases)
    creep = settings.creep_fraction * settings.nominal_current
    s1 = cm.fund[:, V_LN] * np.conj(cm.fund[:, I_PH])
    pw = compute_power(cm.ms[:, V_LN], cm.ms[:, I_PH], cm.vi, s1, present, creep, settings.pf_convention,
                       factors=False)
    return np.stack((pw.p[:, 3], pw.q[:, 3], pw.s_arith[:, 3]), axis=1)


def nominal_flow(settings: MetrologySettings) -> float:
    """Nominal apparent power of the installation, VA (primary): phases x Udin (L-N) x In."""
    w = wiring(settings.system_type)
    udin_ln = settings.nominal_voltage / (3 ** 0.5 if settings.system_type == "DELTA" else
                                          2.0 if settings.system_type == "2L" else 1.0)
    return w.n_phases * udin_ln * settings.nominal_current


@dataclass
class CheckResult:
    difference_pct: np.ndarray    # (3,) W, var, VA; NaN where not enough to compare
    common_s: float               # seconds of frames both paths measured inside the window
    records: int                  # records inside the window


class PathComparison:
    """The running difference of the two paths (see the module docstring)."""

    def __init__(self, fs: float, gain: np.ndarray, min_flow: float, window_s: float = WINDOW_S,
                 min_common_s: float = MIN_COMMON_S, history_s: float = HISTORY_S,
                 apparent_gain: np.ndarray | None = None) -> None:
        """``apparent_gain``: the chip's per-phase VAh to the system's (``metrology.gapfill.apparent_gain``;
        None: ``|gain|``)."""
        self.fs = fs
        self.gain = np.asarray(gain, float)
        self.apparent = np.abs(self.gain) if apparent_gain is None else np.asarray(apparent_gain, float)
        self.min_flow = min_flow
        self.window_ns = int(window_s * NS_PER_S)
        self.min_common_s = min_common_s
        self.history_frames = history_s * fs
        self._starts = np.empty(0)
        self._ends = np.empty(0)
        self._flows = np.empty((0, 3))
        self._pending: list[Any] = []
        # per record: time, sign(chip) x (samples - chip) (3), |chip energy| (3), common seconds
        self._bins: deque[tuple[int, np.ndarray, np.ndarray, float]] = deque()

    def restart(self) -> None:
        """The frame indices start over (a new acquisition epoch): nothing before compares with what follows."""
        self._starts, self._ends, self._flows = np.empty(0), np.empty(0), np.empty((0, 3))
        self._pending.clear()

    def add_cycles(self, start: np.ndarray, end: np.ndarray, flows: np.ndarray) -> None:
        """Measured cycles: frame ranges and their (m, 3) total W, var, VA."""
        self._starts = np.concatenate((self._starts, start))
        self._ends = np.concatenate((self._ends, end))
        self._flows = np.concatenate((self._flows, flows))

    def add_record(self, record: Any) -> None:
        self._pending.append(record)

    def update(self) -> int:
        """Compare every pending record whose frames the cycles have passed; returns how many were compared."""
        if self._ends.size == 0:
            return 0
        through = float(self._ends[-1])
        done = [r for r in self._pending if r.end_index <= through]
        for r in done:
            self._compare(r)
        # records the cycles have not reached yet; bounded, should the samples stop short of them for good
        self._pending = [r for r in self._pending if r.end_index > through][-MAX_PENDING:]
        oldest = min([through - self.history_frames] + [r.start_index for r in self._pending])
        cut = int(np.searchsorted(self._ends, oldest, side="right"))
        if cut:
            self._starts, self._ends, self._flows = self._starts[cut:], self._ends[cut:], self._flows[cut:]
        return len(done)

    def _compare(self, r: Any) -> None:
        length = r.end_index - r.start_index
        if length <= 0:
            return
        ov = np.clip(np.minimum(self._ends, r.end_index) - np.maximum(self._starts, r.start_index), 0.0, None)
        common = float(ov.sum())
        if common <= 0:
            return
        e_s = (self._flows * ov[:, None]).sum(axis=0) / self.fs / S_PER_H
        chip = np.array([float(np.dot(self.gain, r.wh)), float(np.dot(self.gain, r.varh)),
                         float(np.dot(self.apparent, r.vah))]) * (common / length)
        newest = int(r.timestamp_ns)
        if self._bins and newest < self._bins[-1][0]:
            self._bins.clear()        # the clock was set back: the window restarts on the new clock
        self._bins.append((newest, np.sign(chip) * (e_s - chip), np.abs(chip), common / self.fs))
        while self._bins and self._bins[0][0] <= newest - self.window_ns:
            self._bins.popleft()

    def result(self) -> CheckResult:
        if not self._bins:
            return CheckResult(np.full(3, np.nan), 0.0, 0)
        diff = np.sum([b[1] for b in self._bins], axis=0)
        a_c = np.sum([b[2] for b in self._bins], axis=0)
        common_s = float(sum(b[3] for b in self._bins))
        enough = (common_s >= self.min_common_s) & (a_c * S_PER_H >= self.min_flow * common_s) & (a_c > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            pct = np.where(enough, 100.0 * diff / a_c, np.nan)
        return CheckResult(pct, common_s, len(self._bins))
