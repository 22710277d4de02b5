"""Simulated GPIO lines: outputs the driver sets, inputs driven by the simulated ADE9000 or by tests.

Waiting for an edge asks the chip when its next interrupt-moving event is and sleeps until then on
the board's clock: with a virtual clock that is an instant jump, with the system clock a real sleep.
"""
from __future__ import annotations

from typing import Any

from hal.clock import Clock
from hal.gpio import BOTH, FALLING, RISING, Gpio


class SimGpio(Gpio):
    def __init__(self, clock: Clock, **_: object) -> None:
        self.clock = clock
        self.levels: dict[int, bool] = {}
        self.outputs: set[int] = set()
        self._edges: dict[int, int] = {}          # pin -> count of level changes
        self.chip: Any = None
        self.reset_pin: int | None = None

    def attach_chip(self, chip: Any) -> None:
        self.chip = chip
        self.reset_pin = chip.reset_pin

    # lines driven from the outside (chip, tests)
    def drive(self, pin: int, level: bool) -> None:
        if self.levels.get(pin, True) != level:
            self._edges[pin] = self._edges.get(pin, 0) + 1
        self.levels[pin] = level

    def setup_input(self, pin: int, pull: str = "none") -> None:
        self.levels.setdefault(pin, pull != "down")

    def setup_output(self, pin: int, initial: bool) -> None:
        self.outputs.add(pin)
        self.write(pin, initial)

    def read(self, pin: int) -> bool:
        if self.chip is not None:
            self.chip.sync()
        return self.levels.get(pin, True)

    def write(self, pin: int, value: bool) -> None:
        self.levels[pin] = value
        if self.chip is not None and pin == self.reset_pin:
            self.chip.set_reset_pin(value)

    def wait_for_edge(self, pin: int, edge: str, timeout_s: float) -> bool:
        deadline = self.clock.monotonic_ns() + int(timeout_s * 1e9)
        while True:
            before_level, before_edges = self.levels.get(pin, True), self._edges.get(pin, 0)
            event = self.chip.next_event_ns() if self.chip is not None else None
            now = self.clock.monotonic_ns()
            if event is None or event > deadline:
                self.clock.sleep_until_ns(deadline)
                if self.chip is not None:
                    self.chip.sync()
                return self._edge_seen(pin, edge, before_level, before_edges)
            self.clock.sleep_until_ns(max(event, now))
            self.chip.sync()
            if self._edge_seen(pin, edge, before_level, before_edges):
                late = self.chip.take_lateness_ns()
                if late:
                    self.clock.sleep_until_ns(self.clock.monotonic_ns() + late)
                    self.chip.sync()
                return True
            if self.clock.monotonic_ns() >= deadline:
                return False

    def _edge_seen(self, pin: int, edge: str, before: bool, edges: int) -> bool:
        level = self.levels.get(pin, True)
        if self._edges.get(pin, 0) == edges:
            return False
        if edge == FALLING:
            return not level or before
        if edge == RISING:
            return level or not before
        return edge == BOTH or True
