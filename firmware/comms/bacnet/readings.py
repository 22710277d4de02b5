"""Present values and Reliability of the analog and binary inputs, from one measurement-snapshot record.

The S4100's rules (seed 003, "Analog_Input Objects" and "Binary_Input Objects"): a value that is not valid in
the configured system type, or that cannot be measured, reads QNAN; while a voltage, current or frequency
alert (BI1-BI7) is active, the values that depend on it report Reliability UNRELIABLE_OTHER; alerts are not
latched. Beyond the S4100: a value this meter does not measure reads QNAN with NO_SENSOR, and every value of a
snapshot that metrology stopped refreshing reports COMMUNICATION_FAILURE.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

from firmware.comms.bacnet.model import AnalogInput, Model
from firmware.comms.bacnet.settings import ACTIVE_PHASES
from firmware.points import points_by_name

QNAN = math.nan
NO_FAULT = "no-fault-detected"
UNRELIABLE = "unreliable-other"
NO_SENSOR = "no-sensor"
STALE = "communication-failure"
# S4100 "Metering Over-Range +20%": voltage above 1.2 × nominal, current above 1.2 × CT primary.
OVER_RANGE_FACTOR = 1.2
FREQUENCY_RANGE_HZ = (45.0, 65.0)        # S4100 "Frequency Range 45 to 65 Hz"; SPEC §1
LOW_PF = 0.5                             # S4100 BI12-14: "Power Factor less than 50%"
# A phase carrying less than this share of the CT primary has no meaningful power factor (no load).
PF_MIN_CURRENT_FRACTION = 0.01
PHASES = "abc"
LN = {"a": "v_an", "b": "v_bn", "c": "v_cn"}
LL = {"a": "v_ab", "b": "v_bc", "c": "v_ca"}
# Point kinds whose value is invalid while the measurement is out of range (accumulators keep theirs).
LIVE_KINDS = ("instantaneous", "demand")


@dataclass(frozen=True)
class Reading:
    value: float
    reliability: str


@dataclass(frozen=True)
class Limits:
    """The alert thresholds in primary units, from the configuration (AV2-AV9)."""

    system_code: int
    nominal_ln_v: float
    nominal_ll_v: float
    ct_primary_a: float
    phase_loss_fraction: float
    imbalance_fraction: float

    @property
    def phases(self) -> str:
        return ACTIVE_PHASES[self.system_code]

    @property
    def neutral(self) -> bool:
        return self.system_code in (10, 12, 40)


def _num(values: Mapping[str, Any], name: str, element: int = -1) -> float:
    v = values.get(name)
    if element >= 0:
        try:
            v = v[element] if v is not None else None      # type: ignore[index]
        except (TypeError, IndexError):
            return QNAN
    try:
        return float(v) if v is not None else QNAN
    except (TypeError, ValueError):
        return QNAN


def _high(v: float, limit: float) -> bool:
    return math.isfinite(v) and v > limit


def alerts(values: Mapping[str, Any], lim: Limits) -> dict[str, bool]:
    """BI1-BI15 by alert name. Inactive phases never alert."""
    out = {"reserved": False}
    phase_v = {p: _num(values, LN[p] if lim.neutral else LL[p]) for p in PHASES}
    nominal = lim.nominal_ln_v if lim.neutral else lim.nominal_ll_v
    active_v = [phase_v[p] for p in lim.phases if math.isfinite(phase_v[p])]
    highest = max(active_v, default=QNAN)
    for p in PHASES:
        active = p in lim.phases
        v, i, pf = phase_v[p], _num(values, f"i_{p}"), _num(values, f"pf_{p}")
        out[f"volts_error_{p}"] = active and _high(v, OVER_RANGE_FACTOR * nominal)
        out[f"current_error_{p}"] = active and _high(i, OVER_RANGE_FACTOR * lim.ct_primary_a)
        low = not math.isfinite(v) or v < lim.phase_loss_fraction * nominal
        unbalanced = (len(lim.phases) > 1 and math.isfinite(v) and highest > 0
                      and (highest - v) / highest > lim.imbalance_fraction)
        out[f"phase_loss_{p}"] = active and (low or unbalanced)
        loaded = _high(i, PF_MIN_CURRENT_FRACTION * lim.ct_primary_a)
        out[f"low_pf_{p}"] = active and loaded and math.isfinite(pf) and abs(pf) < LOW_PF
    f = _num(values, "frequency")
    out["frequency_error"] = not (math.isfinite(f) and FREQUENCY_RANGE_HZ[0] <= f <= FREQUENCY_RANGE_HZ[1])
    synced = _num(values, "time_synced")
    out["rtc_reset"] = not (math.isfinite(synced) and synced >= 0.5)
    return out


@lru_cache(maxsize=1)
def _kinds() -> dict[str, str]:
    return {name: p.kind for name, p in points_by_name().items()}


def alarm_bitmap(model: Model, active: Mapping[str, bool]) -> int:
    """AI83: BI1 in the least significant bit (seed 003)."""
    return sum(1 << (bi.instance - 1) for bi in model.binary_inputs if active.get(bi.alert))


def _measurement_alert(ai: AnalogInput, active: Mapping[str, bool]) -> bool:
    if ai.point in ("frequency", "frequency_1cycle"):
        return active["frequency_error"]
    phases = ai.phase or PHASES
    return any(active[f"volts_error_{p}"] or active[f"current_error_{p}"] for p in phases)


def analog_input(ai: AnalogInput, values: Mapping[str, Any], active: Mapping[str, bool], lim: Limits,
                 computed: Mapping[str, float]) -> Reading:
    if ai.reserved:
        return Reading(QNAN, NO_FAULT)
    if ai.unavailable:
        return Reading(QNAN, NO_SENSOR)
    if ai.constant is not None:
        return Reading(float(ai.constant), NO_FAULT)
    if ai.compute:
        return Reading(float(computed[ai.compute]), NO_FAULT)
    if ai.phase and ai.phase not in lim.phases:
        return Reading(QNAN, NO_FAULT)           # S4100: not valid in this system type
    raw = _num(values, ai.point, ai.element)
    if not math.isfinite(raw):
        return Reading(QNAN, UNRELIABLE)
    value = raw * ai.scale
    if ai.valid is not None and not ai.valid[0] <= value <= ai.valid[1]:
        return Reading(QNAN, UNRELIABLE)
    if _kinds()[ai.point] in LIVE_KINDS and _measurement_alert(ai, active):
        return Reading(value, UNRELIABLE)
    return Reading(value, NO_FAULT)


def read_all(model: Model, values: Mapping[str, Any], lim: Limits, max_power_kw: float,
             stale: bool, output_config: int) -> tuple[dict[int, Reading], dict[int, Reading]]:
    """(analog inputs, binary inputs) by instance; binary readings carry 1.0 (ACTIVE) or 0.0."""
    active = alerts(values, lim)
    computed = {"max_power": max_power_kw, "alarm_bitmap": float(alarm_bitmap(model, active)),
                "output_config": float(output_config)}
    ais = {ai.instance: analog_input(ai, values, active, lim, computed) for ai in model.analog_inputs}
    bis = {bi.instance: Reading(1.0 if active.get(bi.alert) else 0.0, NO_FAULT) for bi in model.binary_inputs}
    if stale:
        ais = {k: Reading(r.value, STALE) for k, r in ais.items()}
        bis = {k: Reading(r.value, STALE) for k, r in bis.items()}
    return ais, bis
