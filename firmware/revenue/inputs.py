"""Inputs of the revenue registers: revenue lock, power-fail, BPR button, demand sync, TOU override, gate.

On a real board the revenue lock and power-fail lines are the board's GPIO pins (``[gpio]
revenue_lock`` and ``power_fail`` in the board file, read through ``hal.gpio`` by ``GpioInputs``;
both active low: a closed sealed switch or a falling supply pulls the line down). The simulated
board's GPIO (``hal.sim.gpio.SimGpio``) lives inside the acquisition process and its levels can be
driven only from there (by the simulated chip and by tests), so no other process can set them: on
the simulated board these inputs are files that other processes and tests set instead. The revenue
lock is ``[upgrade] revenue_lock_file`` (the same file the upgrade checks and ``firmware.lockstate``
read, so the whole meter agrees on it) and the others are files in ``[revenue.inputs] sim_dir``:
``power_fail`` and ``di1`` ... ``di32`` hold 1 or 0, ``pulseN`` a running count. ``GpioInputs``
itself is tested on ``SimGpio`` lines. A lock source that cannot be read counts as locked: a reset
is refused rather than allowed by mistake.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

from firmware.config.board import load_board
from firmware.lockstate import file_lock_state

NOT_FITTED = -1          # board file: [gpio] revenue_lock / power_fail = -1 when the line is not fitted
# Digital-input functions of [revenue.inputs] (each names a digital input number, 0 = none)
INPUT_FUNCTIONS = ("bpr_button", "demand_sync", "tou_override", "energy_gate")


@dataclass
class InputState:
    """Levels sampled once per second (True = active)."""
    locked: bool = False
    power_fail: bool = False
    bpr_button: bool = False
    demand_sync: bool = False
    tou_override: bool = False
    energy_gate: bool = False
    pulses: dict[int, int] = field(default_factory=dict)      # digital input -> running count
    contacts: dict[int, bool] = field(default_factory=dict)   # digital input -> level


def _read_flag(path: Path) -> bool:
    try:
        return path.read_text().strip().lower() in ("1", "on", "true", "yes", "active", "locked")
    except (FileNotFoundError, UnicodeDecodeError, OSError):
        return False


def _read_count(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or 0)
    except (FileNotFoundError, ValueError, OSError):
        return None


class SimInputs:
    """The simulated board's inputs, as files."""

    def __init__(self, lock_file: str | Path, sim_dir: str | Path, assignment: dict[str, int]) -> None:
        self.lock_file = Path(lock_file)
        self.dir = Path(sim_dir)
        self.assignment = {k: v for k, v in assignment.items() if v}

    def locked(self) -> bool:
        return file_lock_state(self.lock_file)

    def power_fail(self) -> bool:
        return _read_flag(self.dir / "power_fail")

    def read(self) -> InputState:
        state = InputState(locked=self.locked(), power_fail=self.power_fail())
        for function, number in self.assignment.items():
            setattr(state, function, _read_flag(self.dir / f"di{number}"))
        for path in self.dir.glob("pulse*") if self.dir.is_dir() else ():
            suffix = path.name[5:]
            count = _read_count(path)
            if suffix.isdigit() and count is not None:
                state.pulses[int(suffix)] = count
        for path in self.dir.glob("di*") if self.dir.is_dir() else ():
            if path.name[2:].isdigit():
                state.contacts[int(path.name[2:])] = _read_flag(path)
        return state


class GpioInputs:
    """A real board's inputs through ``hal.gpio`` (lock and power-fail active low)."""

    def __init__(self, gpio: Any, lock_pin: int, power_fail_pin: int, di_pins: tuple[int, ...],
                 assignment: dict[str, int]) -> None:
        self.gpio = gpio
        self.lock_pin, self.power_fail_pin, self.di_pins = lock_pin, power_fail_pin, di_pins
        self.assignment = {k: v for k, v in assignment.items() if v}
        for pin in (lock_pin, power_fail_pin, *di_pins):
            if pin != NOT_FITTED:
                gpio.setup_input(pin, "up")

    def locked(self) -> bool:
        if self.lock_pin == NOT_FITTED:      # a board without the switch cannot be sealed
            return False
        try:
            return not self.gpio.read(self.lock_pin)
        except Exception:  # noqa: BLE001 - an unreadable lock counts as locked
            return True

    def power_fail(self) -> bool:
        return self.power_fail_pin != NOT_FITTED and not self.gpio.read(self.power_fail_pin)

    def read(self) -> InputState:
        state = InputState(locked=self.locked(), power_fail=self.power_fail())
        for number, pin in enumerate(self.di_pins, start=1):
            state.contacts[number] = not self.gpio.read(pin)
        for function, number in self.assignment.items():
            setattr(state, function, state.contacts.get(number, False))
        return state


def open_inputs(config: Any, board_path: str | Path | None) -> BoardInputs:
    """The inputs for this board: GPIO on hardware, files on the simulated board."""
    functions = config["revenue.inputs"]
    assignment = {name: getattr(functions, name) for name in INPUT_FUNCTIONS}
    board = load_board(board_path) if board_path is not None else None
    if board is not None and not board.simulated:
        from hal.gpio import open_gpio
        gp = board.gpio
        gpio = open_gpio(gp.backend, chip=gp.chip) if gp.backend == "gpiod" else open_gpio(gp.backend)
        return GpioInputs(gpio, gp.revenue_lock, gp.power_fail, tuple(gp.digital_inputs), assignment)
    return SimInputs(config["upgrade"].revenue_lock_file, functions.sim_dir, assignment)


LockSource = Callable[[], bool]
BoardInputs = Union[SimInputs, GpioInputs]
