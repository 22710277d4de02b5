"""What the supervisor concludes from the services' heartbeat counters: samples lost in the last minute,
the last gap, and the meter's state (healthy, degraded, not healthy).

The acquisition service reports cumulative counters from its start (``gaps``, ``lost_frames`` and, when
it has them, ``last_gap_frames`` and ``last_gap_unix_s``); metrology reports ``overruns``, blocks it
lost because it fell behind the samples ring. A counter that grew within the last ``LOSS_WINDOW_S``
means the meter is losing samples: it is degraded, even with every service running. Time is passed in.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

LOSS_WINDOW_S = 60.0          # "lost frames per minute" and the degraded state look back this far

HEALTHY, DEGRADED, NOT_HEALTHY = "healthy", "degraded", "not healthy"
# `meter status` exit status per state; 1 is also what any error exits with.
EXIT_STATUS = {HEALTHY: 0, NOT_HEALTHY: 1, DEGRADED: 2}

# (service, heartbeat counter) whose growth means lost samples
LOST_FRAMES = ("acquisition", "lost_frames")
OVERRUNS = ("metrology", "overruns")


def meter_state(healthy: bool, losing_samples: bool) -> str:
    """``healthy``: every service running and metering. Losing samples while so makes the meter degraded."""
    if not healthy:
        return NOT_HEALTHY
    return DEGRADED if losing_samples else HEALTHY


class CounterWindow:
    """Growth of one cumulative counter within the last ``window_s``, from the values heartbeats carry.

    A new process starts its counters at zero (``process_started``), so its first value is all growth,
    and a value below the previous one can only come from a process that started afresh.
    """

    def __init__(self, window_s: float = LOSS_WINDOW_S) -> None:
        self.window_s = window_s
        self._last = 0
        self._growth: deque[tuple[float, int]] = deque()

    def process_started(self) -> None:
        self._last = 0

    def update(self, now_s: float, value: int) -> int:
        """Record the counter's value seen at ``now_s`` (monotonic); returns its growth since the last one."""
        value = int(value)
        growth = value - self._last if value >= self._last else value
        self._last = value
        if growth > 0:
            self._growth.append((now_s, growth))
        self._forget(now_s)
        return growth

    def total(self, now_s: float) -> int:
        """Growth within (now_s - window_s, now_s]."""
        self._forget(now_s)
        return sum(g for _, g in self._growth)

    def _forget(self, now_s: float) -> None:
        while self._growth and now_s - self._growth[0][0] >= self.window_s:
            self._growth.popleft()


@dataclass(frozen=True)
class Gap:
    unix_s: float     # when (the service's own time, or when its heartbeat reported the loss)
    frames: int       # how many frames it lost

    def as_dict(self) -> dict[str, Any]:
        return {"unix_s": self.unix_s, "frames": self.frames}


class SampleLoss:
    """Lost frames and metrology overruns of the last minute, and the last gap, from heartbeats.

    The last gap is the acquisition service's own record (``last_gap_unix_s``, ``last_gap_frames``) when
    its heartbeats carry one; otherwise the heartbeat that showed ``lost_frames`` growing dates the gap
    (within a heartbeat interval), and the growth since the previous heartbeat is its size (all the gaps
    of that interval, should there be several). Heartbeats arrive on the supervisor's main loop while
    ``summary`` is asked for from control threads, hence the lock.
    """

    def __init__(self, services: Iterable[str]) -> None:
        names = set(services)
        self.lost_frames = CounterWindow() if LOST_FRAMES[0] in names else None
        self.overruns = CounterWindow() if OVERRUNS[0] in names else None
        self.last_gap: Gap | None = None
        self._lock = threading.Lock()

    def process_started(self, service: str) -> None:
        with self._lock:
            for (name, _), window in ((LOST_FRAMES, self.lost_frames), (OVERRUNS, self.overruns)):
                if service == name and window is not None:
                    window.process_started()

    def heartbeat(self, service: str, info: Mapping[str, Any], now_s: float, now_unix_s: float) -> None:
        """One heartbeat's ``info`` from ``service``, received at ``now_s`` (monotonic) = ``now_unix_s``."""
        with self._lock:
            if service == LOST_FRAMES[0] and self.lost_frames is not None and LOST_FRAMES[1] in info:
                growth = self.lost_frames.update(now_s, info[LOST_FRAMES[1]])
                unix_s, frames = info.get("last_gap_unix_s"), info.get("last_gap_frames")
                if unix_s and frames is not None:
                    self.last_gap = Gap(float(unix_s), int(frames))
                elif growth > 0:
                    self.last_gap = Gap(now_unix_s, growth)
            elif service == OVERRUNS[0] and self.overruns is not None and OVERRUNS[1] in info:
                self.overruns.update(now_s, info[OVERRUNS[1]])

    def summary(self, now_s: float) -> dict[str, Any]:
        """``lost_frames_per_min`` and ``overruns_per_min`` (None without that service), ``last_gap``
        (None before the first), ``losing_samples``."""
        with self._lock:
            lost = self.lost_frames.total(now_s) if self.lost_frames is not None else None
            overruns = self.overruns.total(now_s) if self.overruns is not None else None
            return {"lost_frames_per_min": lost, "overruns_per_min": overruns,
                    "last_gap": self.last_gap.as_dict() if self.last_gap else None,
                    "losing_samples": bool(lost) or bool(overruns)}
