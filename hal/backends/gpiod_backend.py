"""GPIO through the libgpiod v2 Python bindings (character device), imported when opened."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from hal.errors import BusError
from hal.gpio import FALLING, RISING, Gpio


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

    def release(self, pin: int) -> None:
        req = self._requests.pop(pin, None)
        if req is not None:
            req.release()

    def close(self) -> None:
        for req in self._requests.values():
            req.release()
        self._requests.clear()
