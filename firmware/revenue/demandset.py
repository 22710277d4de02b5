"""The demand registers of one register bank: present, predicted, peaks per rate, cumulative.

Channels (SPEC §3: kW, kvar, kVA, A and V, delivered and received; JEM L784: var per quadrant):
see ``DEMAND_CHANNELS``. Each second's ``EnergyIncrement`` gives the integral of every channel over
the second (W·s = Wh x 3600; A·s = Ah x 3600; V·s from V²h), so demand is exactly energy over the
interval, with nothing sampled.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from metrology.demand import DemandClock, PeakDemand, ThermalDemand, WindowDemand
from metrology.energy import S_PER_H, EnergyIncrement
from metrology.registers import TOTAL
from metrology.tou import RATES

DEMAND_CHANNELS = ("p_del", "p_rec", "q_del", "q_rec", "s_del", "s_rec", "q_q1", "q_q2", "q_q3", "q_q4",
                   "i_a", "i_b", "i_c", "v_a", "v_b", "v_c")
CH = {name: i for i, name in enumerate(DEMAND_CHANNELS)}
_ENERGY_SOURCES = (("p_del", "wh_del"), ("p_rec", "wh_rec"), ("q_del", "varh_del"), ("q_rec", "varh_rec"),
                   ("s_del", "vah_del"), ("s_rec", "vah_rec"), ("q_q1", "varh_q1"), ("q_q2", "varh_q2"),
                   ("q_q3", "varh_q3"), ("q_q4", "varh_q4"))


def demand_integrals(inc: EnergyIncrement) -> np.ndarray:
    """Value x seconds of every demand channel over the increment."""
    out = np.zeros(len(DEMAND_CHANNELS))
    for ch, q in _ENERGY_SOURCES:
        out[CH[ch]] = getattr(inc, q)[TOTAL] * S_PER_H
    ah = (inc.ah_del + inc.ah_rec)[:3] * S_PER_H
    v2s = (inc.v2h_del + inc.v2h_rec)[:3] * S_PER_H
    dt = inc.duration_s
    out[CH["i_a"]:CH["i_a"] + 3] = ah
    out[CH["v_a"]:CH["v_a"] + 3] = np.sqrt(np.maximum(v2s, 0.0) * dt) if dt > 0 else 0.0
    return out


class DemandSet:
    def __init__(self, method: str, interval_s: int, subinterval_s: int, sync: str) -> None:
        n = len(DEMAND_CHANNELS)
        self.method = method
        self.window = WindowDemand(n, interval_s, interval_s if method == "block" else subinterval_s)
        self.thermal = ThermalDemand(n, float(interval_s)) if method == "thermal" else None
        self.clock = DemandClock(int(self.window.subinterval_s), sync)
        self.peaks = PeakDemand(n)
        self.rate_peak = np.zeros((len(RATES), n))
        self.rate_peak_time = np.zeros((len(RATES), n))
        self.cumulative = np.zeros(n)           # sum of the peaks at every reset (JEM "cumulative demand")

    # ------------------------------------------------------------------ per second

    def add(self, integrals: np.ndarray, dt_s: float, t_std: float, t_utc: float, rate: int | None,
            peaks_allowed: bool) -> bool:
        """One second (``t_std`` on the local standard clock); True when a subinterval closed."""
        closed = self.close_due(t_std, t_utc, rate, peaks_allowed)
        self.accumulate(integrals, dt_s, t_utc, rate, peaks_allowed)
        return closed

    def close_due(self, t_std: float, t_utc: float, rate: int | None, peaks_allowed: bool) -> bool:
        """Close the subinterval(s) that ended before the second at ``t_std``; True when one did."""
        closure = self.clock.step(t_std)
        if closure.close:
            self._close(closure.skipped, t_utc, rate, peaks_allowed)
        return closure.close

    def accumulate(self, integrals: np.ndarray, dt_s: float, t_utc: float, rate: int | None,
                   peaks_allowed: bool) -> None:
        """Add one second's integrals to the open subinterval (and the thermal demand)."""
        self.window.accumulate(integrals, dt_s)
        if self.thermal is not None and dt_s > 0:
            present = self.thermal.update(integrals / dt_s, dt_s)
            if peaks_allowed:
                self._peak(present, t_utc, rate)

    def sync(self, t_std: float, t_utc: float, rate: int | None, peaks_allowed: bool) -> None:
        """A synchronisation pulse: the open subinterval ends now."""
        self.clock.pulse(t_std)
        self._close(0, t_utc, rate, peaks_allowed)

    def _close(self, skipped: int, t_utc: float, rate: int | None, peaks_allowed: bool) -> None:
        demand = self.window.close(skipped)
        if self.thermal is None and peaks_allowed:
            self._peak(demand, t_utc, rate)

    def _peak(self, demand: np.ndarray, t_utc: float, rate: int | None) -> None:
        self.peaks.update(demand, t_utc)
        if rate is not None:
            new = demand > self.rate_peak[rate]
            self.rate_peak[rate] = np.where(new, demand, self.rate_peak[rate])
            self.rate_peak_time[rate] = np.where(new, t_utc, self.rate_peak_time[rate])

    # ------------------------------------------------------------------ readings

    def present(self) -> np.ndarray:
        return self.thermal.value.copy() if self.thermal is not None else self.window.demand.copy()

    def predicted(self) -> np.ndarray:
        return self.present() if self.thermal is not None else self.window.predicted()

    def continuous_cumulative(self) -> np.ndarray:
        return self.cumulative + self.peaks.value

    def coincident(self, channel: str) -> dict[str, float]:
        """Demand of every channel when ``channel`` peaked, and the coincident PF."""
        row = self.peaks.coincident[CH[channel]]
        out = {name: float(row[i]) for i, name in enumerate(DEMAND_CHANNELS)}
        s = row[CH["s_del"]] + row[CH["s_rec"]]
        p = row[CH["p_del"]] - row[CH["p_rec"]]
        out["pf"] = max(-1.0, min(1.0, p / s)) if s > 0 else math.nan
        return out

    # ------------------------------------------------------------------ resets and state

    def reset_peaks(self) -> None:
        """Peak-demand reset: peaks go into the cumulative registers and start again."""
        self.cumulative = self.cumulative + self.peaks.value
        self.peaks.reset()
        self.rate_peak[:] = 0.0
        self.rate_peak_time[:] = 0.0

    def clear(self) -> None:
        self.window.reset()
        if self.thermal is not None:
            self.thermal.reset()
        self.peaks.reset()
        self.rate_peak[:] = 0.0
        self.rate_peak_time[:] = 0.0
        self.cumulative[:] = 0.0

    def state(self) -> dict[str, Any]:
        return {"window": self.window.state(), "thermal": self.thermal.state() if self.thermal else None,
                "clock": self.clock.state(), "peaks": self.peaks.state(), "rate_peak": self.rate_peak.tolist(),
                "rate_peak_time": self.rate_peak_time.tolist(), "cumulative": self.cumulative.tolist()}

    def restore(self, state: dict[str, Any]) -> None:
        self.window.restore(state.get("window", {}))
        if self.thermal is not None and state.get("thermal"):
            self.thermal.restore(state["thermal"])
        self.clock.restore(state.get("clock", {}))
        self.peaks.restore(state.get("peaks", {}))
        for key in ("rate_peak", "rate_peak_time", "cumulative"):
            arr = np.array(state.get(key, []), dtype=float)
            if arr.shape == getattr(self, key).shape:
                setattr(self, key, arr)
