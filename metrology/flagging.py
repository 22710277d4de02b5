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
from metrology.events import EventStart, EventThresholds, PqEvent, VoltageEvents
from metrology.systems import I_PH


class EventFlagger:
    def __init__(self, thresholds: EventThresholds, channels: np.ndarray, names: tuple[str, ...]) -> None:
        self.channels = np.asarray(channels)         # indices of the derived voltage signals to watch
        self._channel_columns = self.channels.astype(np.float64)     # as the half_cycle_rms kernel takes them
        self.events = VoltageEvents(thresholds, names)
        self.prev_half: np.ndarray | None = None     # mean square of the last half cycle seen

    def restart(self) -> None:
        self.prev_half = None
        self.events.restart()

    @property
    def in_event(self) -> bool:
        return self.events.active

    def process(self, half_ms: np.ndarray, end_index: np.ndarray, end_ns: np.ndarray, power: np.ndarray,
                out: list[PqEvent | EventStart], cycle_stats: Callable[[], np.ndarray] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """``half_ms``: (m, 2, 11); ``end_index``/``end_ns`` (2m,): sample index and clock time where each half
        cycle ends; ``power`` (m,) total active power per cycle; ``cycle_stats`` makes the (m, channels + 2) THD,
        PF and f of each cycle (``metrology.evstats.cycle_quantities``) for the event statistics, called only when
        the detector needs them. Returns Urms(1/2) (2m, 11) and the per-cycle flag (m,); events that start or end
        are appended to ``out``.

        The first value after a restart is the RMS of its half cycle alone.
        """
        m = half_ms.shape[0]
        urms, watched = _kernels.half_cycle_rms(half_ms, self.prev_half, self._channel_columns)
        self.prev_half = half_ms[-1, 1].copy()

        def extra() -> np.ndarray:
            per_cycle = np.full((m, self.channels.size + 2), np.nan) if cycle_stats is None else cycle_stats()
            return np.concatenate((urms[:, I_PH], np.repeat(per_cycle, 2, axis=0)), axis=1)

        flags = self.events.process(watched, end_index, end_ns, power.repeat(2), out, extra)
        return urms, np.logical_or(flags[0::2], flags[1::2])
