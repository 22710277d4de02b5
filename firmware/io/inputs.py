"""Digital inputs: debounce, time stamps, counting by input mode, input metering with totalization.

Pure logic: edges come in with their time stamps (``hal.gpio.EdgeEvent``), time is passed in, nothing here
reads a clock or a line. A raw change becomes a state change only when the line stays in the new state for
the debounce time (ION7400 manual, digital input "Debounce 0.000-1.000: how long the signal must remain in a
state to be considered a valid state change"); the state change carries the time stamp of the raw edge
that began it, to the millisecond. Counting follows the input mode (ION7400 "Input Mode"): ``pulse`` (Form A)
counts a whole pulse, off-on-off, as one; ``kyz`` (Form C) counts every transition.
"""
from __future__ import annotations

from dataclasses import dataclass, field

NS_PER_S = 1_000_000_000
MODES = ("pulse", "kyz")
MAX_CHANNELS = 16                  # digital inputs (and outputs) a board may have
# An [[io.input]] entry's options when the configuration gives none for an input (the schema's defaults).
INPUT_DEFAULTS = {"mode": "pulse", "debounce": 0.02, "polarity": "non_inverting", "ke": 1.0, "unit": "pulses",
                  "rollover": 1e9, "alarm": "on", "alarm_priority": 32}
# Digital-input functions of [revenue.inputs] (each names a digital input number, 0 = none): the io service
# marks the inputs that have one, the revenue registers act on them.
INPUT_FUNCTIONS = ("bpr_button", "demand_sync", "tou_override", "energy_gate", "cover")
# What an input does besides its state and count (SPEC §6; the revenue side reads them from the io snapshot).
FUNCTIONS = ("status", "pulse", "demand_sync", "bpr", "tou_override", "energy_gate")


@dataclass
class Transition:
    """A debounced state change of one input."""
    number: int
    active: bool
    timestamp_ns: int


@dataclass
class InputChannel:
    """One digital input (number from 1) with its debounce filter and counters."""
    number: int
    debounce_s: float = 0.02
    mode: str = "pulse"
    inverted: bool = False          # ION "Polarity": the board's inputs are active low; inverting makes high active
    ke: float = 1.0                 # units per counted pulse (input metering, ION "pulse weight")
    rollover: float = 1e9           # the metered total wraps to 0 here (a register of the connected meter)
    active: bool = False
    since_ns: int = 0               # time stamp of the last state change
    count: int = 0                  # pulses counted by the mode, since the counter was created (persisted)
    activations: int = 0            # off-to-on changes (the revenue side's button and sync edges)
    bounces: int = 0                # raw changes the filter rejected
    _pending: tuple[bool, int] | None = field(default=None, repr=False)

    def level_active(self, level: bool) -> bool:
        """Whether a physical line level is the active state (pulled up: closed contact = low)."""
        return level if self.inverted else not level

    def edge(self, level: bool, timestamp_ns: int) -> list[Transition]:
        """A raw edge; returns the state change a pending edge became, if this edge proves it stable."""
        out = self.settle(timestamp_ns)
        want = self.level_active(level)
        if self._pending is not None and self._pending[0] != want:
            # back before the debounce time ran out: the pending change was a bounce
            self._pending = None
            self.bounces += 1
        if want != self.active and self._pending is None:
            self._pending = (want, timestamp_ns)
        return out

    def settle(self, now_ns: int) -> list[Transition]:
        """The pending change, once the line has stayed in it for the debounce time up to ``now_ns``."""
        if self._pending is None:
            return []
        want, started = self._pending
        if now_ns - started < int(self.debounce_s * NS_PER_S):
            return []
        self._pending = None
        return [self._change(want, started)]

    def _change(self, active: bool, timestamp_ns: int) -> Transition:
        self.active = active
        self.since_ns = timestamp_ns
        if active:
            self.activations += 1
        if self.mode == "kyz" or not active:       # Form A counts a complete pulse when it ends
            self.count += 1
        return Transition(self.number, active, timestamp_ns)

    @property
    def settling(self) -> bool:
        """A raw change waits for its debounce time."""
        return self._pending is not None

    def total(self) -> float:
        """The metered quantity: count × Ke, wrapped at the rollover."""
        return (self.count * self.ke) % self.rollover if self.rollover > 0 else self.count * self.ke


@dataclass(frozen=True)
class Totalizer:
    """A sum of inputs with signed weights (SPEC §6: up to 8 inputs per channel, ± weights), in units."""
    name: str
    inputs: tuple[tuple[int, float], ...]           # (input number, weight)

    def value(self, channels: dict[int, InputChannel]) -> float:
        return sum(w * channels[n].count * channels[n].ke for n, w in self.inputs if n in channels)
