"""Urms(1/2) and the dip/swell/interruption flag of IEC 61000-4-30 (4.7, 5.4).

Urms(1/2) is the RMS over one cycle, refreshed every half cycle. The events themselves (dips, swells,
interruptions, RVC, with their thresholds, hysteresis and polyphase rule) are detected by
``metrology.events.VoltageEvents``; this stage feeds it and turns its state into the per-cycle flag that
aggregation puts on its intervals: a cycle is flagged when a dip, swell or interruption is in progress in it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from metrology import _kernels
from metrology._kernels import reference
from metrology.events import EventStart, EventThresholds, PqEvent, VoltageEvents
from metrology.systems import I_PH


class EventFlagger:
    def __init__(self, thresholds: EventThresholds, channels: np.ndarray, names: tuple[str, ...]) -> None:
        self.channels = np.asarray(channels)         # indices of the derived voltage signals to watch
        self._channel_columns = self.channels.astype(np.float64)     # as the half_cycle_events kernel takes them
        self.events = VoltageEvents(thresholds, names)
        self._prev = np.zeros(0)          # mean square of the last half cycle seen (its signals), once there is one
        self._has_prev = False
        self._work: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def restart(self) -> None:
        self._has_prev = False
        self.events.restart()

    @property
    def prev_half(self) -> np.ndarray | None:
        """Mean square of the last half cycle seen (None after a restart)."""
        return self._prev if self._has_prev else None

    @property
    def in_event(self) -> bool:
        return self.events.active

    def process(self, half_ms: np.ndarray, start: np.ndarray, end: np.ndarray, end_ns: np.ndarray, vi: np.ndarray,
                out: list[PqEvent | EventStart], cycle_stats: Callable[[], np.ndarray] | None = None
                ) -> tuple[np.ndarray, list[bool]]:
        """``half_ms``: (m, 2, 11) (C-contiguous float64, as the log holds it); ``start``, ``end`` (m,): the cycles'
        first and last sample index; ``end_ns`` (2m,): clock time where each half cycle ends; ``vi`` (m, 3) mean v*i per phase of each cycle (their sum
        is the cycle's total active power); ``cycle_stats`` makes the (m, channels + 2) THD, PF and f of each cycle
        (``metrology.evstats.cycle_quantities``) for the event statistics, called only when the detector needs
        them. Returns Urms(1/2) (2m, 11) and the per-cycle flag (m,); events that start or end are appended to
        ``out``.

        The first value after a restart is the RMS of its half cycle alone.
        """
        m, _, k = half_ms.shape
        if self._prev.shape[0] != k:
            self._prev, self._has_prev = np.zeros(k), False
        work = self._work.get(m)
        if work is None:          # the screen's work arrays, one pair per batch size (a batch has a few cycles)
            work = self._work[m] = (np.empty((2 * m, self.channels.size)), np.empty(2 * m))
        watched, cand = work
        ev = self.events
        urms = np.empty((2 * m, k))
        # Urms(1/2), the events' screen and, for a quiet batch, the RVC history: one C pass
        # (reference.half_cycle_events)
        rows = _kernels.half_cycle_events(half_ms, self._prev, self._has_prev, self._channel_columns, ev.hist,
                                          ev.hist_n, ev.screen_params, ev.t.rvc_enabled, bool(ev.open), urms,
                                          watched, cand)
        self._has_prev = True
        if rows >= 0:                    # the usual case: nothing happens
            ev.hist_n = rows
            ev.quiet(int(end_ns[-1]), vi, out)
            return urms, [False] * m

        def extra() -> np.ndarray:
            per_cycle = np.full((m, self.channels.size + 2), np.nan) if cycle_stats is None else cycle_stats()
            return np.concatenate((urms[:, I_PH], np.repeat(per_cycle, 2, axis=0)), axis=1)

        power = np.add.reduce(vi, axis=1).repeat(2)
        flags = ev.screened(watched.copy(), cand != 0, reference.half_ends(start, end), end_ns, power, out, extra,
                            False)
        return urms, np.logical_or(flags[0::2], flags[1::2]).tolist()
