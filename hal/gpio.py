"""One GPIO interface for the board's interrupt, reset and switch lines, with backends by name.

Backends (imported lazily, python-can style): ``"rpigpio"`` (RPi.GPIO), ``"gpiod"`` (libgpiod v2
bindings) and ``"sim"`` (lines driven by the simulated ADE9000 and by tests). Pin numbers are BCM
numbers on the CM4. Interrupt lines of the ADE9000 are active low and level-like: callers check the
level first and wait for a falling edge only while the line is high.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterable

from hal.backends import backend
from hal.errors import BusError

FALLING = "falling"
RISING = "rising"
BOTH = "both"



@dataclass(frozen=True)
class EdgeEvent:
    """One level change of an input line: the level after it and when it happened (CLOCK_MONOTONIC ns,
    the clock the kernel stamps gpiod edge events with, so stamps from any process compare)."""
    pin: int
    level: bool
    timestamp_ns: int


class Gpio(ABC):
    """Digital lines: inputs with optional pull, outputs, and blocking edge waits with a timeout."""

    @abstractmethod
    def setup_input(self, pin: int, pull: str = "none") -> None: ...

    @abstractmethod
    def setup_output(self, pin: int, initial: bool) -> None: ...

    @abstractmethod
    def read(self, pin: int) -> bool: ...

    @abstractmethod
    def write(self, pin: int, value: bool) -> None: ...

    @abstractmethod
    def wait_for_edge(self, pin: int, edge: str, timeout_s: float) -> bool:
        """True when the edge happened, False on timeout."""

    def wait_low(self, pin: int, timeout_s: float) -> bool:
        """True as soon as an active-low line is low (now or after a falling edge within the timeout)."""
        if not self.read(pin):
            return True
        return self.wait_for_edge(pin, FALLING, timeout_s) or not self.read(pin)

    def watch_edges(self, pins: Iterable[int], pull: str = "none") -> None:
        """Request ``pins`` as inputs that report every level change with its time stamp."""
        raise BusError(f"gpio backend {type(self).__name__} does not report edge events; use gpiod or sim")

    def read_edges(self, timeout_s: float) -> list[EdgeEvent]:
        """The edges of the watched pins since the last call, oldest first; waits up to ``timeout_s`` for one."""
        raise BusError(f"gpio backend {type(self).__name__} does not report edge events; use gpiod or sim")

    def release(self, pin: int) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Give one line up, so another owner (the C read loop's IRQ0 request) can take it."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release the lines."""


def open_gpio(name: str, **params: object) -> Gpio:
    """The GPIO backend ``name`` of ``hal.backends.GPIO_BACKENDS``."""
    return backend("gpio", name).load()(**params)
