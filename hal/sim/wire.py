"""The simulated board's digital lines between processes: two append-only text files in one directory.

``inputs`` carries the input edges a test or bench program drives (``pin level timestamp_ns`` per line) to the
process that owns the GPIO (``hal.sim.gpio.SimGpio`` with ``wire=``); ``outputs`` carries every output change
that process makes, in the same form, to whoever counts them (``meter hil pulses``, tests). Levels are the
physical line levels: the board's digital inputs are pulled up, so a closed contact is 0. Time stamps are
CLOCK_MONOTONIC ns, the clock gpiod stamps edges with, which every process on the host shares.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

INPUTS = "inputs"
OUTPUTS = "outputs"
RUN_DIR_NAME = "sim-gpio"     # the wire of a running meter: <run_dir>/sim-gpio (the io and display services)


def _line(pin: int, level: bool, stamp: int) -> bytes:
    return f"{int(pin)} {1 if level else 0} {int(stamp)}\n".encode()


def _parse(data: bytes) -> tuple[list[tuple[int, bool, int]], int]:
    """Complete lines of ``data`` and how many bytes they took (a line still being written waits)."""
    out: list[tuple[int, bool, int]] = []
    used = 0
    while True:
        end = data.find(b"\n", used)
        if end < 0:
            return out, used
        fields = data[used:end].split()
        used = end + 1
        if len(fields) == 3:
            out.append((int(fields[0]), fields[1] == b"1", int(fields[2])))


class Wire:
    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._pos = {INPUTS: 0, OUTPUTS: 0}
        # a reader that (re)starts reads only what is appended from now on, like lines that were not watched,
        # but finds each line at the level it was last driven to (the wire holds its state)
        self.initial: dict[int, bool] = {}
        for name in (INPUTS, OUTPUTS):
            events = self._read(name)
            if name == INPUTS:
                self.initial = {pin: level for pin, level, _ in events}

    def _append(self, name: str, pin: int, level: bool, stamp: int) -> None:
        # one write() of a whole line to an O_APPEND file: lines of concurrent writers never interleave
        fd = os.open(self.dir / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, _line(pin, level, stamp))
        finally:
            os.close(fd)

    def _read(self, name: str) -> list[tuple[int, bool, int]]:
        try:
            with open(self.dir / name, "rb") as f:
                f.seek(self._pos[name])
                data = f.read()
        except FileNotFoundError:
            return []
        events, used = _parse(data)
        self._pos[name] += used
        return events

    # the side that drives inputs and counts outputs (tests, the bench)
    def drive(self, pin: int, level: bool, timestamp_ns: int | None = None) -> int:
        stamp = time.monotonic_ns() if timestamp_ns is None else timestamp_ns
        self._append(INPUTS, pin, level, stamp)
        return stamp

    def read_outputs(self) -> list[tuple[int, bool, int]]:
        return self._read(OUTPUTS)

    # the side that owns the GPIO
    def read_inputs(self) -> list[tuple[int, bool, int]]:
        return self._read(INPUTS)

    def output(self, pin: int, level: bool, timestamp_ns: int) -> None:
        self._append(OUTPUTS, pin, level, timestamp_ns)
