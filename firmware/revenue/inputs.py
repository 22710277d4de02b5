"""Inputs of the revenue registers: revenue lock, power-fail, and the digital inputs' functions (BPR button,
demand sync, TOU override, energy gate) and pulse counts.

The digital inputs belong to the io service (``firmware.services.io``), the one process that holds their
lines: it debounces them, time-stamps and counts them, and publishes levels, pulse counts and activations
(off-to-on changes) in the ``io`` snapshot, which the registers read here each second
(``firmware.io.reader``). A press or a sync pulse is an activation counted by the io service, so one shorter
than a second is never missed. ``[revenue.inputs]`` names which input has which function.

The revenue lock and power-fail lines stay with the registers: on a real board they are the board's GPIO pins
(``[gpio] revenue_lock`` and ``power_fail`` in the board file, read through ``hal.gpio`` by
``GpioInputs``; both active low). On the simulated board they are files other processes and tests set: the
lock is ``[upgrade] revenue_lock_file`` (the same file the upgrade checks and ``firmware.lockstate`` read, so
the whole meter agrees on it) and the power fail ``[revenue.inputs] sim_dir``/``power_fail`` holding 1 or 0.
A lock source that cannot be read counts as locked: a reset is refused rather than allowed by mistake.
"""
from __future__ import annotations

import contextlib
import fcntl
import math
import os
import select
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

from firmware.config.board import load_board
from firmware.io.inputs import INPUT_FUNCTIONS
from firmware.io.reader import IoReader
from firmware.lockstate import file_lock_state
from firmware.timesync.reader import TimeSynced
from hal.errors import BusError
from hal.sim.wire import watch_directory, written_names

# Linux RTC_VL_READ (include/uapi/linux/rtc.h): _IOR('p', 0x13, unsigned int), and the flags that mean the
# backup battery cannot keep the clock (low, empty, or the time already lost with it)
RTC_VL_READ = 0x80047013
RTC_VL_BATTERY_BAD = 0x1 | 0x2 | 0x4     # RTC_VL_DATA_INVALID | RTC_VL_BACKUP_LOW | RTC_VL_BACKUP_EMPTY
RTC_DEVICE = "/dev/rtc0"
WATCH_RETRY_S = 1.0      # simulated board: how often a sim_dir that cannot be watched is tried again
NOT_FITTED = -1          # board file: [gpio] revenue_lock / power_fail = -1 when the line is not fitted
EDGE_FUNCTIONS = ("bpr_button", "demand_sync")       # act once per activation


@dataclass
class InputState:
    """Levels sampled once per second (True = active)."""
    locked: bool = False
    power_fail: bool = False
    bpr_button: bool = False
    demand_sync: bool = False
    tou_override: bool = False
    energy_gate: bool = False
    pressed: set[str] = field(default_factory=set)             # edge functions activated since the last read
    pulses: dict[int, int] = field(default_factory=dict)      # digital input -> running count
    contacts: dict[int, bool] = field(default_factory=dict)   # digital input -> level
    alarm_active: bool = False
    pulse_overflow: bool = False                              # an energy pulse output is suspended
    cover: bool = False                                       # the terminal cover is off (its switch input)
    battery_low: bool = False                                 # the RTC's backup battery is low or was empty
    time_quality: float = math.nan                            # the time service's (0, 1, 2); NaN: none


def _read_flag(path: Path) -> bool:
    try:
        return path.read_text().strip().lower() in ("1", "on", "true", "yes", "active", "locked")
    except (FileNotFoundError, UnicodeDecodeError, OSError):
        return False


def rtc_battery_low(device: str = RTC_DEVICE) -> bool:
    """The RTC says its backup battery is low or was empty (RTC_VL_READ); False where the RTC cannot say."""
    try:
        fd = os.open(device, os.O_RDONLY)
    except OSError:
        return False
    try:
        flags = struct.unpack("I", fcntl.ioctl(fd, RTC_VL_READ, b"\0" * 4))[0]
    except OSError:
        return False          # an RTC without voltage monitoring (ENOTTY, EINVAL)
    finally:
        os.close(fd)
    return bool(flags & RTC_VL_BATTERY_BAD)


class DigitalInputs:
    """The digital inputs' functions from the io snapshot, and the time quality from the time snapshot."""

    def __init__(self, reader: IoReader | None, assignment: dict[str, int], time: TimeSynced | None = None) -> None:
        self.reader = reader
        self.assignment = {k: v for k, v in assignment.items() if v}
        self.time = time
        self._activations: dict[int, int] | None = None

    def fill(self, state: InputState) -> InputState:
        if self.time is not None:
            state.time_quality = self.time.value("time_quality")
        view = self.reader.read() if self.reader is not None else None
        if view is None:
            return state
        state.contacts = dict(view.levels)
        state.pulses = dict(view.counts)
        state.alarm_active = view.flag("alarm_active")
        state.pulse_overflow = view.flag("pulsing_suspended")
        for function, number in self.assignment.items():
            setattr(state, function, view.levels.get(number, False))
        last = self._activations
        if last is not None:
            for function in EDGE_FUNCTIONS:
                pin_number = self.assignment.get(function, 0)
                now_count = view.activations.get(pin_number, 0)
                if pin_number and now_count > last.get(pin_number, now_count):
                    state.pressed.add(function)
        self._activations = dict(view.activations)
        return state


class SimInputs:
    """The simulated board's lock and power-fail lines, as files; digital inputs from the io snapshot."""

    def __init__(self, lock_file: str | Path, sim_dir: str | Path, digital: DigitalInputs) -> None:
        self.lock_file = Path(lock_file)
        self.dir = Path(sim_dir)
        self.digital = digital
        self._notify = -1                 # inotify descriptor on sim_dir, made by the first wait
        self._watch_tried = -math.inf

    def locked(self) -> bool:
        return file_lock_state(self.lock_file)

    def power_fail(self) -> bool:
        return _read_flag(self.dir / "power_fail")

    def wait_power_fail(self, poll_s: float, idle_s: float) -> None:
        """Until the power-fail file may have changed: a write in ``sim_dir`` wakes the wait (inotify, as a
        GPIO line's edge does; the directory is made if missing, as the simulated wire makes its own), else it
        ends after ``idle_s``; where the directory cannot be watched, after ``poll_s``."""
        now = time.monotonic()
        if self._notify < 0 and now - self._watch_tried >= WATCH_RETRY_S:
            self._watch_tried = now
            with contextlib.suppress(OSError):
                self.dir.mkdir(parents=True, exist_ok=True)
            self._notify = watch_directory(self.dir)
        if self._notify < 0:
            time.sleep(poll_s)
            return
        ready, _, _ = select.select([self._notify], [], [], idle_s)
        if ready:
            written_names(self._notify)
        elif not self.dir.is_dir():          # removed: its watch went with it; watched again once it is back
            os.close(self._notify)
            self._notify = -1

    def read(self) -> InputState:
        return self.digital.fill(InputState(locked=self.locked(), power_fail=self.power_fail(),
                                            battery_low=_read_flag(self.dir / "battery_low")))


class GpioInputs:
    """A real board's lock and power-fail lines through ``hal.gpio`` (active low); digital inputs from the io
    snapshot."""

    def __init__(self, gpio: Any, lock_pin: int, power_fail_pin: int, digital: DigitalInputs) -> None:
        self.gpio = gpio
        self.lock_pin, self.power_fail_pin = lock_pin, power_fail_pin
        self.digital = digital
        for pin in (lock_pin, power_fail_pin):
            if pin != NOT_FITTED:
                gpio.setup_input(pin, "up")
        # the power-fail line reports its edges (gpiod's edge events), so the watch sleeps until one; a backend
        # without them has the line read every poll
        self._edges = False
        if power_fail_pin != NOT_FITTED:
            try:
                gpio.release(power_fail_pin)
                gpio.watch_edges([power_fail_pin], "up")
                self._edges = True
            except BusError:
                gpio.setup_input(power_fail_pin, "up")

    def locked(self) -> bool:
        if self.lock_pin == NOT_FITTED:      # a board without the switch cannot be sealed
            return False
        try:
            return not self.gpio.read(self.lock_pin)
        except Exception:  # noqa: BLE001 - an unreadable lock counts as locked
            return True

    def power_fail(self) -> bool:
        return self.power_fail_pin != NOT_FITTED and not self.gpio.read(self.power_fail_pin)

    def wait_power_fail(self, poll_s: float, idle_s: float) -> None:
        """Until the line's next edge (either way), at most ``idle_s``; without edge events, ``poll_s`` (a GPIO
        read is one ioctl); without the line, ``idle_s``."""
        if self.power_fail_pin == NOT_FITTED or not self._edges:
            time.sleep(poll_s if self.power_fail_pin != NOT_FITTED else idle_s)
            return
        try:
            self.gpio.read_edges(idle_s)      # the watch reads the line's level after it
        except Exception:  # noqa: BLE001 - a failing line is read again after a poll, as without edge events
            time.sleep(poll_s)

    def read(self) -> InputState:
        return self.digital.fill(InputState(locked=self.locked(), power_fail=self.power_fail(),
                                            battery_low=rtc_battery_low()))


def open_inputs(config: Any, board_path: str | Path | None, io_snapshot: str | None = None,
                time_snapshot: str | None = None) -> BoardInputs:
    """The inputs for this board: lock and power fail by GPIO on hardware, files on the simulated board;
    digital inputs from the io snapshot named ``io_snapshot`` (none: no digital inputs), the time quality
    from ``time_snapshot`` (none: NaN)."""
    functions = config["revenue.inputs"]
    assignment = {name: getattr(functions, name) for name in INPUT_FUNCTIONS}
    digital = DigitalInputs(IoReader(io_snapshot) if io_snapshot else None, assignment,
                            TimeSynced(time_snapshot) if time_snapshot else None)
    board = load_board(board_path) if board_path is not None else None
    if board is not None and not board.simulated:
        from hal.gpio import open_gpio
        gp = board.gpio
        gpio = open_gpio(gp.backend, chip=gp.chip) if gp.backend == "gpiod" else open_gpio(gp.backend)
        return GpioInputs(gpio, gp.revenue_lock, gp.power_fail, digital)
    return SimInputs(config["upgrade"].revenue_lock_file, functions.sim_dir, digital)


LockSource = Callable[[], bool]
BoardInputs = Union[SimInputs, GpioInputs]
