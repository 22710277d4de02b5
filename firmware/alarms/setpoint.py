"""One setpoint alarm: over, under or deviation, pickup and dropout values and delays (ION7400 manual,
"Setpoint Setup": Pickup, Pickup Delay, Dropout, Dropout Delay, By Percentage/By Value).

An ``over`` alarm picks up once the value has stayed above the pickup for the pickup delay and drops out once
it has stayed below the dropout for the dropout delay (``under``: below / above). A ``deviation`` alarm
watches |value - nominal|, so one alarm covers both sides of the frequency. With ``percent`` the values are
in % of the nominal of the point's unit. A missing value (NaN) neither picks up nor drops out: a restarting
measurement must not clear an alarm that is still true.

A ``high_speed`` setpoint (ION7400 "high-speed setpoints") is evaluated on every half-cycle r.m.s. value
(Urms(1/2), IEC 61000-4-30 5.4.2, refreshed each half cycle) with that value's own time, rather than on the
one-second value: a dip of a few cycles that the one-second mean smooths away still picks it up, and its delays
count in half cycles.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

KINDS = ("over", "under", "deviation")
# The points a high-speed setpoint can watch: the columns of metrology's half-cycle r.m.s. records
# (metrology.systems.SIGNALS: va, vb, vc, vab, vbc, vca, ia, ib, ic).
HALF_CYCLE_POINTS = {"v_an": 0, "v_bn": 1, "v_cn": 2, "v_ab": 3, "v_bc": 4, "v_ca": 5, "i_a": 6, "i_b": 7,
                     "i_c": 8}


@dataclass(frozen=True)
class Setpoint:
    name: str
    point: str                      # published point name (measurement snapshot)
    kind: str = "over"
    pickup: float = 0.0
    dropout: float = 0.0
    pickup_delay_s: float = 0.0
    dropout_delay_s: float = 0.0
    percent: bool = False           # pickup/dropout in % of nominal
    nominal: float = math.nan       # nominal of the point's unit (V, A, Hz); needed by percent and deviation
    index: int = 0                  # element of an array point
    priority: int = 128
    high_speed: bool = False        # on the half-cycle r.m.s. values (HALF_CYCLE_POINTS), not the 1-s value

    def measure(self, value: float) -> float:
        """The value compared with the limits: the deviation for ``deviation``, % of nominal with ``percent``."""
        if self.kind == "deviation":
            value = abs(value - self.nominal)
        if self.percent:
            return 100.0 * value / self.nominal if self.nominal else math.nan
        return value

    def beyond_pickup(self, v: float) -> bool:
        return v < self.pickup if self.kind == "under" else v > self.pickup

    def within_dropout(self, v: float) -> bool:
        return v > self.dropout if self.kind == "under" else v < self.dropout


@dataclass
class SetpointState:
    """The evaluation state of one setpoint; ``update`` returns "pickup", "dropout" or None."""
    spec: Setpoint
    active: bool = False
    extreme: float = math.nan       # max (over, deviation) or min (under) of the measured value while active
    _since: float | None = field(default=None, repr=False)     # when the pending condition began

    def update(self, value: float, t: float) -> str | None:
        v = self.spec.measure(value)
        if not math.isfinite(v):
            self._since = None
            return None
        if self.active:
            self._track(v)
            pending = self.spec.within_dropout(v)
            delay = self.spec.dropout_delay_s
        else:
            pending = self.spec.beyond_pickup(v)
            delay = self.spec.pickup_delay_s
        if not pending:
            self._since = None
            return None
        if self._since is None:
            self._since = t
        if t - self._since + 1e-9 < delay:
            return None
        self._since = None
        self.active = not self.active
        if self.active:
            self.extreme = v
            return "pickup"
        return "dropout"

    def _track(self, v: float) -> None:
        if not math.isfinite(self.extreme):
            self.extreme = v
        self.extreme = min(self.extreme, v) if self.spec.kind == "under" else max(self.extreme, v)
