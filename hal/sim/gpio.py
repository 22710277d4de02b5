"""Simulated GPIO lines: outputs the driver sets, inputs driven by the simulated ADE9000 or by tests.

Waiting for an edge asks the chip when its next interrupt-moving event is and sleeps until then on
the board's clock: with a virtual clock that is an instant jump, with the system clock a real sleep.

Watched inputs (``watch_edges``) queue an ``EdgeEvent`` per level change, stamped by whoever drives the
line (a test gives the time; otherwise the board's clock at ``drive``), as gpiod's kernel stamps do.
With a ``wire`` directory (``hal.sim.wire``) the lines reach other processes: input edges another
process appends to ``wire/inputs`` are read in order with their stamps, and every output change is
appended to ``wire/outputs``. Not modelled: contact bounce (a test drives it edge by edge), the
kernel's event-buffer overflow, electrical limits of the output transistor.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Iterable

from hal.clock import Clock
from hal.gpio import BOTH, FALLING, RISING, EdgeEvent, Gpio
from hal.sim.wire import Wire


class SimGpio(Gpio):
    def __init__(self, clock: Clock, wire: str | Path | None = None, **_: object) -> None:
        self.clock = clock
        self.wire = Wire(wire) if wire is not None else None
        self._watched: set[int] = set()
        self._queue: list[EdgeEvent] = []
        self._cond = threading.Condition()
        self.levels: dict[int, bool] = {}
        self.outputs: set[int] = set()
        self._edges: dict[int, int] = {}          # pin -> count of level changes
        self.chip: Any = None
        self.reset_pin: int | None = None

    def attach_chip(self, chip: Any) -> None:
        self.chip = chip
        self.reset_pin = chip.reset_pin

    # lines driven from the outside (chip, tests)
    def drive(self, pin: int, level: bool, timestamp_ns: int | None = None) -> None:
        if self.levels.get(pin, True) != level:
            self._edges[pin] = self._edges.get(pin, 0) + 1
            if pin in self._watched:
                stamp = self.clock.monotonic_ns() if timestamp_ns is None else timestamp_ns
                with self._cond:
                    self._queue.append(EdgeEvent(pin, level, stamp))
                    self._cond.notify_all()
                if self.wire is not None:
                    self.wire.wake()
        self.levels[pin] = level

    def watch_edges(self, pins: Iterable[int], pull: str = "none") -> None:
        for pin in pins:
            self.setup_input(pin, pull)
            self._watched.add(pin)

    def read_edges(self, timeout_s: float) -> list[EdgeEvent]:
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while True:
            if self.wire is not None:
                for pin, level, stamp in self.wire.read_inputs():
                    self.drive(pin, level, stamp)
            with self._cond:
                if self._queue or time.monotonic() >= deadline:
                    out, self._queue = self._queue, []
                    return out
                wait = deadline - time.monotonic()
                if self.wire is None:
                    self._cond.wait(wait)
            if self.wire is not None:
                self.wire.wait_inputs(wait)      # an edge on the wire, or one driven here (drive wakes it)

    def setup_input(self, pin: int, pull: str = "none") -> None:
        if self.wire is not None and pin in self.wire.initial:
            self.levels.setdefault(pin, self.wire.initial[pin])
        self.levels.setdefault(pin, pull != "down")

    def setup_output(self, pin: int, initial: bool) -> None:
        self.outputs.add(pin)
        self.write(pin, initial)

    def read(self, pin: int) -> bool:
        if self.chip is not None:
            self.chip.sync()
        return self.levels.get(pin, True)

    def write(self, pin: int, value: bool) -> None:
        if self.wire is not None and pin in self.outputs and self.levels.get(pin) != value:
            self.wire.output(pin, value, time.monotonic_ns())
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

    def close(self) -> None:
        if self.wire is not None:
            self.wire.close()

    def _edge_seen(self, pin: int, edge: str, before: bool, edges: int) -> bool:
        level = self.levels.get(pin, True)
        if self._edges.get(pin, 0) == edges:
            return False
        if edge == FALLING:
            return not level or before
        if edge == RISING:
            return level or not before
        return edge == BOTH or True
