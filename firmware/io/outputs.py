"""Digital outputs: forced state, timed pulses, KYZ energy pulsing with its rate limit, end-of-interval and
alarm outputs.

Pure logic: ``OutputChannel.tick(now_ns)`` says which level the line must have now; the service writes it.
Energy pulsing (ION7400 manual, "Calibration Pulser": Kt, pulse width, Pulse/KYZ output mode, "Pulsing
suspended indicates that the output port is not able to pulse quickly enough"): the pulses owed are the
whole multiples of Kt in the energy registered since the pulser's origin, less the pulses already given,
so a pulser that restarts from its persisted (origin, pulses) gives exactly the pulses it owes and never
one twice. The line changes at most ``MAX_RATE_HZ`` times a second in KYZ mode (each change is a pulse)
and completes at most that many pulses a second in pulse mode; while more are owed than one second at
that rate can give, the channel says "pulsing suspended" and keeps the owed pulses, which it gives when
the load falls.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

NS_PER_S = 1_000_000_000
MAX_RATE_HZ = 25.0             # ION7400 manual, digital outputs: "Pulse frequency <= 25 Hz"
SOURCES = ("none", "energy", "demand_interval", "alarm")
ENERGY_INTEGRATIONS = ("delivered", "received", "absolute", "net")   # forward, reverse, del+rec, del-rec
# The published energy registers each integration pulses, by quantity (points in firmware/points/basic.toml).
ENERGY_POINTS = {
    q: {"delivered": f"{q}_delivered", "received": f"{q}_received", "absolute": f"{q}_del_plus_rec",
        "net": f"{q}_del_minus_rec"} for q in ("wh", "varh", "vah")}


@dataclass
class EnergyPulser:
    """Pulses owed for an energy register (Kt units per pulse), restartable from (origin, given)."""
    kt: float
    origin: float = math.nan        # register value at which pulse 0 began
    given: int = 0                  # pulses started since the origin

    def owed(self, register: float) -> int:
        if not math.isfinite(register):
            return 0                # registers unavailable: no pulse, nothing lost (the origin stays)
        if not math.isfinite(self.origin):
            self.origin = register
        if register < self.origin - self.kt:   # a register reset (or a net register going down): restart
            self.origin, self.given = register, 0
            return 0
        return max(int(math.floor((register - self.origin) / self.kt + 1e-9)) - self.given, 0)


@dataclass
class OutputChannel:
    """One digital output (number from 1)."""
    number: int
    source: str = "none"
    mode: str = "pulse"             # "pulse" (Form A: on for the width, then off) or "kyz" (one change per pulse)
    pulse_width_s: float = 0.02
    max_rate_hz: float = MAX_RATE_HZ
    forced: bool | None = None      # force on/off overrides the source until released
    level: bool = False
    pulses: int = 0                 # pulses given (persisted with the pulser)
    suspended: bool = False
    pulser: EnergyPulser | None = None
    _off_at_ns: int = 0
    _next_ns: int = 0
    _owed: int = 0
    _hold: bool = False             # level of a level-following source (alarm)

    def min_spacing_ns(self) -> int:
        rate_limited = NS_PER_S / self.max_rate_hz
        if self.mode == "pulse":
            # a pulse-mode pulse is on for the width and off at least as long before the next
            return int(max(rate_limited, 2 * self.pulse_width_s * NS_PER_S))
        return int(max(rate_limited, self.pulse_width_s * NS_PER_S))

    def energy(self, register: float) -> None:
        """The latest value of the pulsed energy register."""
        if self.pulser is None:
            return
        self._owed = self.pulser.owed(register)
        self.suspended = self._owed > NS_PER_S / self.min_spacing_ns()

    def request_pulse(self, count: int = 1) -> None:
        """Pulses from an event source (end of demand interval, a forced pulse)."""
        self._owed += count

    def hold(self, on: bool) -> None:
        """A level source (alarm output): on while the alarm is active."""
        self._hold = on

    def tick(self, now_ns: int) -> bool:
        """The level the line must have at ``now_ns``."""
        if self.forced is not None:
            self.level = self.forced
            return self.level
        if self.source == "alarm":
            self.level = self._hold
            return self.level
        if self.mode == "pulse" and self.level and now_ns >= self._off_at_ns:
            self.level = False
        if self._owed > 0 and now_ns >= self._next_ns and not (self.mode == "pulse" and self.level):
            self._start_pulse(now_ns)
        return self.level

    def _start_pulse(self, now_ns: int) -> None:
        self._owed -= 1
        self.pulses += 1
        if self.pulser is not None:
            self.pulser.given += 1
        self._next_ns = now_ns + self.min_spacing_ns()
        if self.mode == "kyz":
            self.level = not self.level
        else:
            self.level = True
            self._off_at_ns = now_ns + int(self.pulse_width_s * NS_PER_S)

    @property
    def owed(self) -> int:
        return self._owed
