"""GPIO through RPi.GPIO (BCM numbering), imported when the backend is opened."""
from __future__ import annotations

from hal.errors import BusError
from hal.gpio import BOTH, FALLING, Gpio


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

    def close(self) -> None:
        if self._pins:
            self._g.cleanup(list(self._pins))
            self._pins.clear()
