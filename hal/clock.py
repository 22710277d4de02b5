"""Clocks the hardware layer waits on: the system clock, or a virtual clock for the simulated board.

With a ``VirtualClock`` no time passes by itself: waiting on a simulated interrupt line jumps the
clock to the moment the simulated chip raises it, so tests and replay run as fast as the reader
consumes, sample-exact and repeatable.
"""
from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic_ns(self) -> int: ...
    def realtime_ns(self) -> int: ...
    def sleep_until_ns(self, deadline_ns: int) -> None: ...
    @property
    def virtual(self) -> bool: ...


class SystemClock:
    """CLOCK_MONOTONIC for intervals, CLOCK_REALTIME for sample time stamps."""

    virtual = False

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def realtime_ns(self) -> int:
        return time.time_ns()

    def sleep_until_ns(self, deadline_ns: int) -> None:
        remaining = deadline_ns - time.monotonic_ns()
        if remaining > 0:
            time.sleep(remaining / 1e9)


class VirtualClock:
    """Time that moves only when someone waits: ``sleep_until_ns`` jumps straight to the deadline."""

    virtual = True

    def __init__(self, epoch_ns: int = 1_700_000_000 * 10**9, start_ns: int = 0) -> None:
        self.epoch_ns = epoch_ns      # CLOCK_REALTIME at monotonic 0
        self._now_ns = start_ns

    def monotonic_ns(self) -> int:
        return self._now_ns

    def realtime_ns(self) -> int:
        return self.epoch_ns + self._now_ns

    def sleep_until_ns(self, deadline_ns: int) -> None:
        if deadline_ns > self._now_ns:
            self._now_ns = deadline_ns

    def advance_ns(self, delta_ns: int) -> None:
        self._now_ns += max(0, int(delta_ns))
