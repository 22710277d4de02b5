"""Voltage events of IEC 61000-4-30 Class A from Urms(1/2): dips (sags), swells, interruptions and rapid voltage
changes, each with its start, end, duration and extreme values; the counters of each kind.

Every Urms(1/2) value (a one-cycle window refreshed each half cycle, computed in ``metrology.flagging``) is
stamped with the end of its window: the time it is known. Thresholds are in % of Udin (L-N for wye and single
phase, L-L for delta) with a hysteresis, per channel:

- dip (5.4.2): starts when the first channel falls below the dip threshold, ends when every channel is at or
  above threshold + hysteresis; the residual voltage is the lowest Urms(1/2) of any channel during it;
- swell (5.4.3): starts when the first channel rises above the swell threshold, ends when every channel is at or
  below threshold - hysteresis; its extreme is the highest Urms(1/2);
- interruption (5.5): starts when *every* channel is below the interruption threshold, ends when any channel is
  at or above threshold + hysteresis. A dip goes on through an interruption, as the standard evaluates both;
- RVC (5.11): in steady state (the last 100/120 Urms(1/2) values of every channel within the RVC threshold of
  their mean), an event starts when a value moves beyond the threshold from the mean of the 100/120 values before
  it; it ends when every channel is steady again, within threshold - hysteresis. Its end is the first value of
  that steady run, so its duration does not include the 100/120 half cycles needed to confirm it. ΔUmax is the
  largest deviation of any value during it from the mean before it, ΔUss the change of the 100/120-value mean
  from before to after. An RVC that runs into a dip or swell is discarded: that is a dip or a swell.

Finished events are classified (``metrology.pqclass``: ITIC and SEMI F47 for dips and swells, the disturbance
direction from the change of the total active power). A ``start`` notice is returned when an event begins, so
captures can be triggered at once, and the event itself when it ends.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from metrology import _kernels
from metrology.evstats import PHASE_CURRENTS, EventStats
from metrology.pqclass import direction, itic_region, semi_f47

# The PQ event kinds, the one list of them: the recorder, the counters, the configuration and the docs take it.
KINDS = ("sag", "swell", "interruption", "rvc", "transient")
VOLTAGE_KINDS = KINDS[:3]          # the RMS voltage events (IEC 61000-4-30 5.4): "disturbances"
POWER_HISTORY_HALVES = 20          # pre-event active power: the mean of the last 10 cycles before the start


@dataclass(frozen=True)
class EventThresholds:
    """The detection settings, in % of Udin (``metrology.settings.MetrologySettings`` carries them)."""
    udin: float                    # V, of the watched channels (L-N, or L-L for delta and 2L)
    sag_pct: float = 90.0          # IEC 61000-4-30 5.4.2; ION7400 default 90 %
    swell_pct: float = 110.0       # 5.4.3; ION default 110 %
    interruption_pct: float = 10.0  # 5.5; ION default 10 % (JEMStar: 50 %)
    hysteresis_pct: float = 2.0    # ION default 2 %
    rvc_enabled: bool = True
    rvc_threshold_pct: float = 5.0     # JEMStar II RVC trigger 5 %
    rvc_hysteresis_pct: float = 2.5    # JEMStar II RVC reset 2.5 %
    halves_per_second: int = 100       # 100 at 50 Hz, 120 at 60 Hz: the RVC mean (5.11)


@dataclass
class PqEvent:
    kind: str                      # one of KINDS
    start_ns: int
    end_ns: int
    start_index: float             # sample index where it started (for captures)
    channels: tuple[str, ...]      # the channels that took part
    initiator: str                 # the channel that started it
    extreme_v: tuple[float, ...]   # per watched channel: the lowest (sag, interruption) or highest (swell) Urms(1/2)
    extreme_pct: float             # the worst of them, % of Udin (residual voltage for a dip)
    number: int = 0                # this kind's count since the detector started
    delta_umax_pct: float = math.nan   # RVC
    delta_uss_pct: float = math.nan    # RVC
    peak_v: float = math.nan           # transient: the largest sample change against the cycle before
    itic: str = ""
    semi_f47: str = ""
    direction: str = ""
    direction_confidence: float = math.nan
    stats: dict[str, Any] = field(default_factory=dict)   # min/max/avg of V, I, THD, PF, f (metrology.evstats)

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def as_dict(self) -> dict[str, Any]:
        """Plain values; a measurement that does not apply (NaN) is None, so the dict is standard JSON."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in d.items()}
        d["duration_s"] = self.duration_s
        d["channels"], d["extreme_v"] = list(self.channels), list(self.extreme_v)
        return d


@dataclass
class EventStart:
    """An event has begun: enough to trigger a capture now; the event follows when it ends."""
    kind: str
    start_ns: int
    start_index: float
    initiator: str


@dataclass
class _Open:
    kind: str
    start_ns: int
    start_index: float
    initiator: int
    extreme: np.ndarray
    involved: np.ndarray
    power: list[float] = field(default_factory=list)
    mean_before: np.ndarray | None = None      # RVC
    steady_since: int = 0                       # RVC: values in the current steady run
    stats: EventStats | None = None             # from the value that started it


class VoltageEvents:
    """Dip, swell, interruption and RVC state over the watched channels (``names``: their signal names)."""

    def __init__(self, thresholds: EventThresholds, names: tuple[str, ...]) -> None:
        t = self.t = thresholds
        self.names = names
        u = t.udin / 100.0
        self.dip, self.swell, self.intr = t.sag_pct * u, t.swell_pct * u, t.interruption_pct * u
        self.hyst = t.hysteresis_pct * u
        self.rvc_thr, self.rvc_end = t.rvc_threshold_pct * u, (t.rvc_threshold_pct - t.rvc_hysteresis_pct) * u
        self.n_rvc = t.halves_per_second
        self.screen_params = np.array([self.dip, self.swell, self.rvc_thr])
        # the last Urms(1/2) values (RVC), up to n_rvc rows, right-aligned: rows n_rvc - hist_n .. (``history``)
        self.hist = np.zeros((self.n_rvc, len(names)))
        self.hist_n = 0
        self.counts = dict.fromkeys(KINDS, 0)
        self._last_ns = 0
        self.restart()

    def restart(self) -> None:
        """Samples were lost: an open dip, swell or interruption ends at the last value before the loss (it is
        returned by the next ``process``), an open RVC is dropped, the RVC history starts over."""
        self.pending: list[PqEvent | EventStart] = [
            self._finish(ev, self._last_ns) for ev in getattr(self, "open", {}).values() if ev.kind != "rvc"]
        self.open: dict[str, _Open] = {}
        self.hist_n = 0
        self.power_hist: deque[float] = deque(maxlen=POWER_HISTORY_HALVES)
        # the quiet batches' per-cycle power terms since power_hist was brought up to date (``quiet``), the
        # latest last: each holds a cycle at least, so the last POWER_HISTORY_HALVES hold every half cycle it keeps
        self._quiet_power: deque[np.ndarray] = deque(maxlen=POWER_HISTORY_HALVES)
        self._last_ns = 0

    @property
    def history(self) -> np.ndarray:
        """The last Urms(1/2) values (n, channels), n up to n_rvc, oldest first (a view of ``hist``)."""
        return self.hist[self.n_rvc - self.hist_n:]

    @history.setter
    def history(self, rows: np.ndarray) -> None:
        rows = rows[-self.n_rvc:]
        self.hist[self.n_rvc - rows.shape[0]:] = rows
        self.hist_n = rows.shape[0]

    @property
    def active(self) -> bool:
        """A dip, swell or interruption is in progress (what aggregation flags)."""
        return any(k in self.open for k in VOLTAGE_KINDS)

    def process(self, u: np.ndarray, end_index: np.ndarray, end_ns: np.ndarray, power: np.ndarray,
                out: list[PqEvent | EventStart], extra: np.ndarray | Callable[[], np.ndarray] | None = None
                ) -> np.ndarray:
        """``u`` (n, channels) Urms(1/2) in V, each stamped with the sample index and clock time at its window's
        end; ``power`` (n,) total active power of the half cycle (W); ``extra`` (n, 3 + channels + 2) the values
        of the event statistics beside each Urms(1/2) (``metrology.evstats``: phase currents, THD, PF, f; NaN
        when not given), or a function that makes them, called only when some value is looked at one by one. Appends starts and finished events to ``out``; returns the per-value flag (a dip, swell
        or interruption in progress)."""
        # a value beyond the dip or swell threshold, or one far from the mean of the 100/120 before it (an RVC
        # candidate: ``_step`` checks steady state and the rest), in one C pass (reference.event_screen)
        maybe, rvc_maybe = _kernels.event_screen(u, self.history, self.n_rvc, self.screen_params, self.t.rvc_enabled)
        quiet = not self.open and not maybe and not np.logical_or.reduce(rvc_maybe)
        if quiet:
            self.history = np.concatenate((self.history, u[-self.n_rvc:]))
        return self.screened(u, rvc_maybe, end_index, end_ns, power, out, extra, quiet)

    def quiet(self, last_ns: int, power_terms: np.ndarray, out: list[PqEvent | EventStart]) -> None:
        """``screened`` of a quiet batch whose values already joined the history (``last_ns``: the clock time of its
        last value), its power given as ``power_terms`` (m, j): each row's sum is a cycle's total active power, the
        power of both its half cycles. The sums are made when an event needs the power before it
        (``_power_history``)."""
        if self.pending:
            out.extend(self.pending)
            self.pending = []
        if power_terms.shape[0]:
            self._quiet_power.append(power_terms)
        self._last_ns = last_ns

    def _power_history(self) -> None:
        """``power_hist`` with the power of the quiet batches' half cycles since it was brought up to date."""
        if self._quiet_power:
            power = np.add.reduce(np.concatenate(self._quiet_power), axis=1)
            self.power_hist.extend(power[-((POWER_HISTORY_HALVES + 1) // 2):].repeat(2).tolist())
            self._quiet_power.clear()

    def screened(self, u: np.ndarray, rvc_maybe: np.ndarray, end_index: np.ndarray, end_ns: np.ndarray,
                 power: np.ndarray, out: list[PqEvent | EventStart],
                 extra: np.ndarray | Callable[[], np.ndarray] | None, quiet: bool) -> np.ndarray:
        """``process`` after the screen (``rvc_maybe`` its RVC candidates): ``quiet`` (no event open, no value beyond
        the dip or swell threshold, no RVC candidate) says the values need no look one by one, and that the
        history already holds them."""
        n = u.shape[0]
        if self.pending:
            out.extend(self.pending)
            self.pending = []
        self._power_history()
        if quiet:                                     # the usual case: nothing happens
            self.power_hist.extend(power[-POWER_HISTORY_HALVES:].tolist())
            self._last_ns = int(end_ns[-1])
            return np.zeros(n, dtype=bool)
        if extra is None:
            extra = np.full((n, PHASE_CURRENTS + u.shape[1] + 2), np.nan)
        elif callable(extra):
            extra = extra()
        flags = np.empty(n, dtype=bool)
        ul = u.tolist()
        for k in range(n):
            self._step(u[k], ul[k], float(end_index[k]), int(end_ns[k]), float(power[k]), bool(rvc_maybe[k]), out,
                       extra[k])
            flags[k] = self.active
        return flags

    # ------------------------------------------------------------------ per value

    def _step(self, u: np.ndarray, ul: list[float], index: float, ns: int, power: float, rvc_maybe: bool,
              out: list[PqEvent | EventStart], extra: np.ndarray) -> None:
        lo, hi = min(ul), max(ul)
        self._dip_swell("sag", lo < self.dip, all(x >= self.dip + self.hyst for x in ul), u, index, ns, out,
                        np.argmin(u), low=True)
        self._dip_swell("swell", hi > self.swell, all(x <= self.swell - self.hyst for x in ul), u, index, ns, out,
                        np.argmax(u), low=False)
        self._dip_swell("interruption", hi < self.intr, any(x >= self.intr + self.hyst for x in ul), u, index, ns,
                        out, np.argmax(u), low=True)
        for ev in self.open.values():
            ev.power.append(power)
            if ev.kind == "rvc":        # its end is backdated to the steady run that confirms it: no statistics
                continue
            if ev.stats is None:
                ev.stats = EventStats(u, extra)
            else:
                ev.stats.add(u, extra)
        if self.t.rvc_enabled:
            self._rvc(u, index, ns, rvc_maybe, out)
        self.history = np.concatenate((self.history, u[None, :]))[-self.n_rvc:]
        if not self.open:
            self.power_hist.append(power)
        self._last_ns = ns

    def _dip_swell(self, kind: str, start: bool, clear: bool, u: np.ndarray, index: float, ns: int,
                   out: list[PqEvent | EventStart], initiator: Any, low: bool) -> None:
        ev = self.open.get(kind)
        if ev is None:
            if start:
                ev = self.open[kind] = _Open(kind, ns, index, int(initiator), u.copy(), self._beyond(kind, u))
                out.append(EventStart(kind, ns, index, self.names[ev.initiator]))
                self.open.pop("rvc", None)           # an RVC that becomes a dip or swell is no RVC
            return
        ev.extreme = np.minimum(ev.extreme, u) if low else np.maximum(ev.extreme, u)
        ev.involved |= self._beyond(kind, u)
        if clear:
            del self.open[kind]
            out.append(self._finish(ev, ns))

    def _beyond(self, kind: str, u: np.ndarray) -> np.ndarray:
        return u < self.dip if kind == "sag" else u > self.swell if kind == "swell" else u < self.intr

    def _rvc(self, u: np.ndarray, index: float, ns: int, candidate: bool, out: list[PqEvent | EventStart]) -> None:
        ev = self.open.get("rvc")
        if self.history.shape[0] < self.n_rvc or (ev is None and (not candidate or self.active)):
            return                    # the usual case, and every value of a dip or swell: nothing to look at
        window = self.history
        mean = window.mean(axis=0)
        if ev is None:
            if candidate and not self.active and np.all(np.abs(window - mean).max(axis=0) <= self.rvc_thr):
                dev = np.abs(u - mean)
                if dev.max() > self.rvc_thr:
                    # no start notice: an RVC may still turn into a dip or swell, which is then no RVC (5.11)
                    self.open["rvc"] = _Open("rvc", ns, index, int(np.argmax(dev)), dev, dev > self.rvc_thr,
                                             mean_before=mean)
            return
        assert ev.mean_before is not None
        ev.extreme = np.maximum(ev.extreme, np.abs(u - ev.mean_before))
        ev.involved |= np.abs(u - ev.mean_before) > self.rvc_thr
        # steady again once the last 100/120 values (this one included) all lie within threshold - hysteresis
        recent = np.concatenate((window[1:], u[None, :]))
        m = recent.mean(axis=0)
        if np.all(np.abs(recent - m).max(axis=0) <= self.rvc_end):
            del self.open["rvc"]
            first_steady_ns = ns - int(round((self.n_rvc - 1) * (ns - self._last_ns)))
            result = self._finish(ev, max(first_steady_ns, ev.start_ns))
            result.delta_umax_pct = float(ev.extreme.max() / self.t.udin * 100.0)
            result.delta_uss_pct = float(np.abs(m - ev.mean_before).max() / self.t.udin * 100.0)
            out.append(result)

    def _finish(self, ev: _Open, end_ns: int) -> PqEvent:
        self.counts[ev.kind] += 1
        involved = tuple(self.names[i] for i in np.flatnonzero(ev.involved))
        worst = float(ev.extreme.max() if ev.kind in ("swell", "rvc") else ev.extreme.min())
        result = PqEvent(ev.kind, ev.start_ns, end_ns, ev.start_index, involved, self.names[ev.initiator],
                         tuple(float(x) for x in ev.extreme), worst / self.t.udin * 100.0, self.counts[ev.kind],
                         stats=ev.stats.result() if ev.stats is not None else {})
        if ev.kind in VOLTAGE_KINDS:
            result.itic = itic_region(result.extreme_pct, result.duration_s)
            result.semi_f47 = semi_f47(result.extreme_pct, result.duration_s) if ev.kind != "swell" else ""
            self._power_history()
            before = float(np.mean(self.power_hist)) if self.power_hist else math.nan
            during = float(np.mean(ev.power)) if ev.power else math.nan
            result.direction, result.direction_confidence = direction(before, during, rising=ev.kind == "swell")
        return result
