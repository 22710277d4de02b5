"""GPIO through the libgpiod v2 Python bindings (character device), imported when opened.

Watched inputs (``watch_edges``) are one line request with edge detection on both edges and the kernel's
CLOCK_MONOTONIC event clock: the kernel stamps each edge when its interrupt arrives and queues it, so an
edge is neither missed nor late-stamped while the reading process is busy (up to the kernel's event
buffer, 16 events per line by default).
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterable

from hal.errors import BusError
from hal.gpio import FALLING, RISING, EdgeEvent, Gpio


class GpiodGpio(Gpio):
    def __init__(self, chip: str = "/dev/gpiochip0", consumer: str = "openmeter", **_: object) -> None:
        try:
            import gpiod
        except ImportError as exc:
            raise BusError("gpio backend 'gpiod' needs the gpiod bindings (pip install 'openmeter[device]')") from exc
        self._gpiod: Any = gpiod
        self._chip_path = chip if chip.startswith("/") else f"/dev/{chip}"
        self._consumer = consumer
        self._requests: dict[int, Any] = {}
        self._watch: Any = None

    def _request(self, pin: int, settings: object) -> None:
        old = self._requests.pop(pin, None)
        if old is not None:
            old.release()
        self._requests[pin] = self._gpiod.request_lines(self._chip_path, consumer=self._consumer,
                                                        config={pin: settings})

    def setup_input(self, pin: int, pull: str = "none") -> None:
        ls = self._gpiod.line
        bias = {"none": ls.Bias.DISABLED, "up": ls.Bias.PULL_UP, "down": ls.Bias.PULL_DOWN}[pull]
        self._request(pin, self._gpiod.LineSettings(direction=ls.Direction.INPUT, bias=bias,
                                                    edge_detection=ls.Edge.BOTH))

    def setup_output(self, pin: int, initial: bool) -> None:
        ls = self._gpiod.line
        self._request(pin, self._gpiod.LineSettings(
            direction=ls.Direction.OUTPUT, output_value=ls.Value.ACTIVE if initial else ls.Value.INACTIVE))

    def read(self, pin: int) -> bool:
        return self._requests[pin].get_value(pin) == self._gpiod.line.Value.ACTIVE

    def write(self, pin: int, value: bool) -> None:
        ls = self._gpiod.line
        self._requests[pin].set_value(pin, ls.Value.ACTIVE if value else ls.Value.INACTIVE)

    def wait_for_edge(self, pin: int, edge: str, timeout_s: float) -> bool:
        req = self._requests[pin]
        want = {FALLING: self._gpiod.EdgeEvent.Type.FALLING_EDGE, RISING: self._gpiod.EdgeEvent.Type.RISING_EDGE}
        while req.wait_edge_events(timedelta(seconds=timeout_s)):
            for event in req.read_edge_events():
                if edge not in want or event.event_type == want[edge]:
                    return True
        return False

    def watch_edges(self, pins: Iterable[int], pull: str = "none") -> None:
        ls = self._gpiod.line
        pins = tuple(pins)
        bias = {"none": ls.Bias.DISABLED, "up": ls.Bias.PULL_UP, "down": ls.Bias.PULL_DOWN}[pull]
        settings = self._gpiod.LineSettings(direction=ls.Direction.INPUT, bias=bias, edge_detection=ls.Edge.BOTH,
                                            event_clock=ls.Clock.MONOTONIC)
        if self._watch is not None:
            self._watch.release()
        self._watch = self._gpiod.request_lines(self._chip_path, consumer=self._consumer, config={pins: settings})
        for pin in pins:
            self._requests[pin] = self._watch

    def read_edges(self, timeout_s: float) -> list[EdgeEvent]:
        if self._watch is None:
            return []
        if not self._watch.wait_edge_events(timedelta(seconds=max(timeout_s, 0.0))):
            return []
        rising = self._gpiod.EdgeEvent.Type.RISING_EDGE
        return [EdgeEvent(int(e.line_offset), e.event_type == rising, int(e.timestamp_ns))
                for e in self._watch.read_edge_events()]

    def release(self, pin: int) -> None:
        req = self._requests.pop(pin, None)
        if req is not None:
            req.release()

    def close(self) -> None:
        for req in {id(r): r for r in self._requests.values()}.values():
            req.release()
        self._requests.clear()
        self._watch = None
