"""The statistics of a dip, swell or interruption (SPEC §4): minimum, maximum and average during the event of the
watched voltages, the phase currents, the THD of the watched voltages, the total power factor and the frequency.

Each quantity comes from the finest value the pipeline has when the detector sees a Urms(1/2) value:

- ``v``: Urms(1/2) of each watched channel (the values the detector itself compares with its thresholds);
- ``i``: Irms(1/2) of each phase current, the same one-cycle window refreshed every half cycle;
- ``thd_v``: THD of each watched voltage over its cycle, sqrt(RMS² - H1²) / H1 (%), from the cycle's mean square
  and fundamental phasor: every order of the one-cycle spectrum (DC included), not the 2..50 grouped orders of
  the 10/12-cycle window;
- ``pf``: total power factor of the cycle, ΣP / Σ(Vrms·Irms) over the phases (arithmetic apparent power), signed
  as P (IEC);
- ``f``: the cycle's frequency (1 / its duration), NaN for a free-running cycle.

Cycle values are repeated on both Urms(1/2) values of their cycle. The statistics take every value from the one
that started the event to the last one before it ended; NaN values (no fundamental, a free-running cycle, no
current) are left out, and a statistic with no value at all is None.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from metrology.systems import I_PH, V_LN

# quantity -> the resolution of the values its statistics take (docs/pq.md "Event statistics")
SOURCES = {"v": "half-cycle", "i": "half-cycle", "thd_v": "cycle", "pf": "cycle", "f": "cycle"}
PER_CHANNEL = ("v", "i", "thd_v")          # one value per channel; pf and f are one value for the system
PHASE_CURRENTS = 3


def cycle_quantities(ms: np.ndarray, fund: np.ndarray, vi: np.ndarray, freq: np.ndarray,
                     watched: np.ndarray) -> np.ndarray:
    """Per cycle (m rows): THD (%) of each ``watched`` derived signal, the total PF and the frequency (Hz), as
    (m, len(watched) + 2). ``ms``/``fund`` (m, 11) mean square and fundamental phasor, ``vi`` (m, 3) active power
    per phase (W), ``freq`` (m,) Hz."""
    h1_sq = np.abs(fund[:, watched]) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        thd = np.where(h1_sq > 0, np.sqrt(np.maximum(ms[:, watched] - h1_sq, 0.0) / h1_sq) * 100.0, np.nan)
        s_total = np.sqrt(ms[:, V_LN] * ms[:, I_PH]).sum(axis=1)
        p_total = vi.sum(axis=1)
        pf = np.where(s_total > 0, np.clip(p_total / s_total, -1.0, 1.0), np.nan)
    return np.column_stack((thd, pf, freq))


class EventStats:
    """Running min, max and sum of one event's values: a row is the watched voltages, then the extra values
    (phase currents, THD of each watched voltage, PF, f) as ``metrology.flagging`` lays them out."""

    def __init__(self, v: np.ndarray, extra: np.ndarray) -> None:
        row = np.concatenate((v, extra))
        finite = np.isfinite(row)
        self.n_v = v.shape[0]
        self.lo, self.hi = row.copy(), row.copy()
        self.total = np.where(finite, row, 0.0)
        self.count = finite.astype(np.int64)

    def add(self, v: np.ndarray, extra: np.ndarray) -> None:
        row = np.concatenate((v, extra))
        finite = np.isfinite(row)
        np.fmin(self.lo, row, out=self.lo)          # fmin/fmax: a NaN gives way to any number
        np.fmax(self.hi, row, out=self.hi)
        self.total += np.where(finite, row, 0.0)
        self.count += finite

    def result(self) -> dict[str, dict[str, Any]]:
        """{quantity: {"min", "max", "avg": a list per channel (v, i, thd_v) or one number (pf, f), "source"}}."""
        with np.errstate(divide="ignore", invalid="ignore"):
            avg = np.where(self.count > 0, self.total / self.count, np.nan)
        n_v = self.n_v
        spans = {"v": slice(0, n_v), "i": slice(n_v, n_v + PHASE_CURRENTS),
                 "thd_v": slice(n_v + PHASE_CURRENTS, 2 * n_v + PHASE_CURRENTS),
                 "pf": slice(2 * n_v + PHASE_CURRENTS, 2 * n_v + PHASE_CURRENTS + 1),
                 "f": slice(2 * n_v + PHASE_CURRENTS + 1, 2 * n_v + PHASE_CURRENTS + 2)}
        out: dict[str, dict[str, Any]] = {}
        for name, sl in spans.items():
            entry: dict[str, Any] = {k: _plain(a[sl], name in PER_CHANNEL)
                                     for k, a in (("min", self.lo), ("max", self.hi), ("avg", avg))}
            entry["source"] = SOURCES[name]
            out[name] = entry
        return out


def _plain(values: np.ndarray, per_channel: bool) -> Any:
    """JSON values: NaN (no value during the event) as None."""
    items = [float(x) if np.isfinite(x) else None for x in values]
    return items if per_channel else items[0]
