"""Classification of a finished voltage event: ITIC (CBEMA) region, SEMI F47 ride-through, disturbance direction.

Magnitudes are the residual (dips, interruptions) or the highest (swells) Urms(1/2), in % of Udin; durations in s.
"""
from __future__ import annotations

import math

# ITIC curve (Information Technology Industry Council, 2000 revision; 120 V nominal, applied in % of nominal).
# Upper (overvoltage) boundary: (longest duration s, highest tolerated %), the last holds for any longer event.
ITIC_UPPER: tuple[tuple[float, float], ...] = ((0.001, 200.0), (0.003, 140.0), (0.5, 120.0), (math.inf, 110.0))
# Lower (undervoltage) boundary: (longest duration s, lowest tolerated %).
ITIC_LOWER: tuple[tuple[float, float], ...] = ((0.02, 0.0), (0.5, 70.0), (10.0, 80.0), (math.inf, 90.0))
# SEMI F47-0706 voltage sag ride-through: (longest duration s, lowest voltage % to ride through); shorter than
# 50 ms and longer than 1 s the standard asks nothing.
SEMI_F47: tuple[tuple[float, float], ...] = ((0.05, 0.0), (0.2, 50.0), (0.5, 70.0), (1.0, 80.0), (math.inf, 0.0))
DIRECTION_MIN_CHANGE = 0.02     # a change of active power below 2 % of the pre-event power says nothing


def _limit(table: tuple[tuple[float, float], ...], duration_s: float) -> float:
    for longest, value in table:
        if duration_s <= longest:
            return value
    return table[-1][1]


def itic_region(magnitude_pct: float, duration_s: float) -> str:
    """'no_interruption' inside the curve, 'prohibited' above it (overvoltage), 'no_damage' below it."""
    if magnitude_pct > _limit(ITIC_UPPER, duration_s):
        return "prohibited"
    if magnitude_pct < _limit(ITIC_LOWER, duration_s):
        return "no_damage"
    return "no_interruption"


def semi_f47(residual_pct: float, duration_s: float) -> str:
    """'pass' when equipment built to SEMI F47-0706 must ride through this dip, 'fail' when it may trip."""
    return "pass" if residual_pct >= _limit(SEMI_F47, duration_s) else "fail"


def direction(power_before_w: float, power_during_w: float, rising: bool) -> tuple[str, float]:
    """Where the disturbance came from, from the sign of the change of total active power.

    A dip caused upstream (the supply side) lowers the voltage at the load, which then draws less power; a fault
    downstream draws more through the meter while pulling the voltage down. A swell the other way round. The
    confidence is the size of the change relative to the power before, capped at 1; below
    ``DIRECTION_MIN_CHANGE`` (or with no load) the direction is 'undetermined'.
    """
    if not (math.isfinite(power_before_w) and math.isfinite(power_during_w)) or abs(power_before_w) < 1e-9:
        return "undetermined", 0.0
    change = (power_during_w - power_before_w) / abs(power_before_w)
    if abs(change) < DIRECTION_MIN_CHANGE:
        return "undetermined", abs(change)
    upstream = (change < 0) != rising
    return ("upstream" if upstream else "downstream"), min(1.0, abs(change))
