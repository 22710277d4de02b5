"""The simulated board's digital lines between processes: two append-only text files in one directory.

``inputs`` carries the input edges a test or bench program drives (``pin level timestamp_ns`` per line) to the
process that owns the GPIO (``hal.sim.gpio.SimGpio`` with ``wire=``); ``outputs`` carries every output change
that process makes, in the same form, to whoever counts them (``meter hil pulses``, tests). Levels are the
physical line levels: the board's digital inputs are pulled up, so a closed contact is 0. Time stamps are
CLOCK_MONOTONIC ns, the clock gpiod stamps edges with, which every process on the host shares.

The owner waits for input edges as gpiod's owner waits on its line file descriptor: on an inotify descriptor
that turns readable when ``inputs`` is written (``wait_inputs``), so an idle owner is not woken at all. Where
inotify is missing the wait looks at the file every ``POLL_S``.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import select
import struct
import time
from pathlib import Path
from typing import Iterable

INPUTS = "inputs"
OUTPUTS = "outputs"
RUN_DIR_NAME = "sim-gpio"     # the wire of a running meter: <run_dir>/sim-gpio (the io and display services)
POLL_S = 0.002                # without inotify: how often a waiting owner looks at the file
# <sys/inotify.h>
IN_MODIFY, IN_CREATE, IN_MOVED_TO = 0x002, 0x100, 0x080
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_EVENT = struct.Struct("iIII")    # wd, mask, cookie, len; then len bytes of name


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
        self._notify: int | None = None        # inotify descriptor, made by the first wait
        self._wake: tuple[int, int] | None = None   # pipe that ends a wait early, made by the first wait or wake
        # a reader that (re)starts reads only what is appended from now on, like lines that were not watched,
        # but finds each line at the level it was last driven to (the wire holds its state)
        self.initial: dict[int, bool] = {}
        for name in (INPUTS, OUTPUTS):
            events = self._read(name)
            if name == INPUTS:
                self.initial = {pin: level for pin, level, _ in events}

    def _append(self, name: str, pin: int, level: bool, stamp: int) -> None:
        self._append_lines(name, _line(pin, level, stamp))

    def _append_lines(self, name: str, data: bytes) -> None:
        # one write() of whole lines to an O_APPEND file: lines of concurrent writers never interleave, and a
        # reader finds all of them or none
        fd = os.open(self.dir / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
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

    def drive_train(self, events: Iterable[tuple[int, bool, int]]) -> None:
        """Edges (pin, level, time stamp) that arrive together, as a kernel's queue of edge events does when its
        reader wakes: the reader sees the whole train in one read."""
        self._append_lines(INPUTS, b"".join(_line(pin, level, stamp) for pin, level, stamp in events))

    def read_outputs(self) -> list[tuple[int, bool, int]]:
        return self._read(OUTPUTS)

    # the side that owns the GPIO
    def read_inputs(self) -> list[tuple[int, bool, int]]:
        return self._read(INPUTS)

    def output(self, pin: int, level: bool, timestamp_ns: int) -> None:
        self._append(OUTPUTS, pin, level, timestamp_ns)

    def wait_inputs(self, timeout_s: float) -> bool:
        """Until ``inputs`` is written after the last call, ``wake()`` is called, or ``timeout_s`` passes; True
        when something may have come (read_inputs says what). A write between two calls is never missed: the
        descriptor stays readable until this drains it."""
        if self._notify is None:
            self._notify = self._watch()
        wake_r = self._wake_pipe()[0]
        fds = [wake_r] + ([self._notify] if self._notify >= 0 else [])
        ready, _, _ = select.select(fds, [], [], max(timeout_s, 0.0) if self._notify >= 0 else
                                    min(max(timeout_s, 0.0), POLL_S))
        if wake_r in ready:
            _drain(wake_r)
        return bool(ready) and (wake_r in ready or self._notify < 0 or self._inputs_written())

    def wake(self) -> None:
        """End a ``wait_inputs`` of another thread (an edge driven in this process)."""
        with contextlib.suppress(BlockingIOError):      # one pending byte is enough
            os.write(self._wake_pipe()[1], b"!")

    def _wake_pipe(self) -> tuple[int, int]:
        if self._wake is None:
            self._wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        return self._wake

    def _watch(self) -> int:
        return watch_directory(self.dir)

    def _inputs_written(self) -> bool:
        """Drain the inotify events; whether one was about ``inputs`` (writes of ``outputs`` also arrive)."""
        assert self._notify is not None
        return INPUTS in written_names(self._notify)

    def close(self) -> None:
        for fd in (self._notify, *(self._wake or ())):
            if fd is not None and fd >= 0:
                os.close(fd)
        self._notify = self._wake = None


def watch_directory(directory: str | Path) -> int:
    """An inotify descriptor that turns readable when a file in ``directory`` is written, created or moved in
    (non-blocking; ``written_names`` drains it), or -1 where inotify or the directory is missing."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = int(libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
    except (OSError, AttributeError):
        return -1
    if fd < 0:
        return -1
    if libc.inotify_add_watch(fd, os.fsencode(directory), IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0:
        os.close(fd)
        return -1
    return fd


def written_names(fd: int) -> set[str]:
    """Drain the events of a ``watch_directory`` descriptor: the names of the files they were about."""
    data, names = _drain(fd), set()
    at = 0
    while at + _EVENT.size <= len(data):
        _, _, _, n = _EVENT.unpack_from(data, at)
        names.add(os.fsdecode(data[at + _EVENT.size:at + _EVENT.size + n].rstrip(b"\0")))
        at += _EVENT.size + n
    return names


def _drain(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
