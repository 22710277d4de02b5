"""GPIO through RPi.GPIO (BCM numbering), imported when the backend is opened."""
from __future__ import annotations

import queue
import time
from typing import Iterable

from hal.errors import BusError
from hal.gpio import BOTH, FALLING, EdgeEvent, Gpio


class RpiGpio(Gpio):
    def __init__(self, **_: object) -> None:
        try:
            import RPi.GPIO as GPIO  # noqa: N814 - the library's own name
        except ImportError as exc:
            raise BusError("gpio backend 'rpigpio' needs RPi.GPIO (pip install 'openmeter[device]')") from exc
        self._g = GPIO
        GPIO.setwarnings(False)
        GPIO.setmode(GPIO.BCM)
        self._pins: set[int] = set()
        self._edges: queue.SimpleQueue[EdgeEvent] = queue.SimpleQueue()

    def setup_input(self, pin: int, pull: str = "none") -> None:
        pud = {"none": self._g.PUD_OFF, "up": self._g.PUD_UP, "down": self._g.PUD_DOWN}[pull]
        self._g.setup(pin, self._g.IN, pull_up_down=pud)
        self._pins.add(pin)

    def setup_output(self, pin: int, initial: bool) -> None:
        self._g.setup(pin, self._g.OUT, initial=self._g.HIGH if initial else self._g.LOW)
        self._pins.add(pin)

    def read(self, pin: int) -> bool:
        return bool(self._g.input(pin))

    def write(self, pin: int, value: bool) -> None:
        self._g.output(pin, self._g.HIGH if value else self._g.LOW)

    def wait_for_edge(self, pin: int, edge: str, timeout_s: float) -> bool:
        kind = self._g.FALLING if edge == FALLING else self._g.BOTH if edge == BOTH else self._g.RISING
        return self._g.wait_for_edge(pin, kind, timeout=max(1, int(timeout_s * 1000))) is not None

    def watch_edges(self, pins: Iterable[int], pull: str = "none") -> None:
        """RPi.GPIO's edge thread calls back per edge; the stamp is taken there, in user space, so it is later
        than gpiod's kernel stamp by the callback's latency (typically well under a millisecond)."""
        for pin in pins:
            self.setup_input(pin, pull)
            self._g.add_event_detect(pin, self._g.BOTH, callback=self._on_edge)

    def _on_edge(self, pin: int) -> None:
        stamp = time.monotonic_ns()
        self._edges.put(EdgeEvent(pin, bool(self._g.input(pin)), stamp))

    def read_edges(self, timeout_s: float) -> list[EdgeEvent]:
        out: list[EdgeEvent] = []
        try:
            out.append(self._edges.get(timeout=max(timeout_s, 0.0)) if timeout_s > 0 else self._edges.get_nowait())
            while True:
                out.append(self._edges.get_nowait())
        except queue.Empty:
            return out

    def close(self) -> None:
        if self._pins:
            self._g.cleanup(list(self._pins))
            self._pins.clear()
