"""Urms(1/2) and the dip/swell/interruption flag of IEC 61000-4-30 (4.7, 5.4).

Urms(1/2) is the RMS over one cycle, refreshed every half cycle. A polyphase event starts when
the first channel crosses a threshold and ends when the last one has come back by the hysteresis.
This stage only says *whether* each cycle lies inside such an event, which is what aggregation
needs to flag its intervals; recording the events themselves is the power-quality service's job.
"""
from __future__ import annotations

import numpy as np


class EventFlagger:
    def __init__(self, udin: float, channels: np.ndarray, dip_pct: float, swell_pct: float,
                 interruption_pct: float, hysteresis_pct: float) -> None:
        self.channels = np.asarray(channels)         # indices of the derived voltage signals to watch
        self.dip = udin * dip_pct / 100
        self.swell = udin * swell_pct / 100
        self.interruption = udin * interruption_pct / 100
        self.hyst = udin * hysteresis_pct / 100
        self.restart()

    def restart(self) -> None:
        self.prev_half: np.ndarray | None = None     # mean square of the last half cycle seen
        self.in_event = False

    def process(self, half_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``half_ms``: (m, 2, 11). Returns Urms(1/2) (2m, 11) and the per-cycle flag (m,).

        The first value after a restart is the RMS of its half cycle alone.
        """
        m = half_ms.shape[0]
        halves = half_ms.reshape(2 * m, -1)
        prev = halves[:1] if self.prev_half is None else self.prev_half[None, :]
        shifted = np.concatenate((prev, halves[:-1]))
        urms = np.sqrt((shifted + halves) / 2)
        self.prev_half = halves[-1].copy()
        v = urms[:, self.channels]
        lo, hi = v.min(axis=1), v.max(axis=1)
        start = (lo < self.dip) | (hi > self.swell)
        if not self.in_event and not start.any():     # the usual case: no event anywhere in the batch
            return urms, np.zeros(m, dtype=bool)
        flags = np.empty(2 * m, dtype=bool)
        state = self.in_event
        clear = (lo >= self.dip + self.hyst) & (hi <= self.swell - self.hyst)
        for k in range(2 * m):               # 100..130 iterations per second: cheap
            if not state and start[k]:
                state = True
            elif state and clear[k]:
                state = False
            flags[k] = state
        self.in_event = state
        return urms, np.asarray(flags.reshape(m, 2).any(axis=1))
