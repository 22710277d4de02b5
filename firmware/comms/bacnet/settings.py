"""The S4100 analog values AV2-AV11 as views of the meter's configuration, and the checks on writes to them.

The S4100 keeps its settings in its own registers; this meter keeps them in its one configuration file, so
reading AV3 reads ``[metrology] ct_primary`` and writing it is a configuration change (versioned, logged with
the user "bacnet", refused while the revenue lock seals the metrology and revenue sections). A write is
checked first against the S4100's own range (seed 003, PICS "Property Range Restrictions"), then against
what this meter can represent; either refusal is VALUE_OUT_OF_RANGE with the reason.
"""
from __future__ import annotations

import math
from typing import Any

from firmware.config import Config
from metrology.demand import DEMAND_INTERVALS_MIN

# S4100 System Type codes (seed 003, "Supported System Types") and this meter's [metrology] system_type.
SYSTEM_TYPE_CODES = {10: "SINGLE", 11: "2L", 12: "2L+1n", 31: "DELTA", 40: "4W-WYE"}
# 3W-WYE (a wye with no neutral wire) has no S4100 code: it reads as the other three-wire system, 31.
CODE_OF_SYSTEM_TYPE = {"SINGLE": 10, "2L": 11, "2L+1n": 12, "DELTA": 31, "3W-WYE": 31, "4W-WYE": 40}
# Phases each system type measures (seed 003 table: CTs used per system type).
ACTIVE_PHASES = {10: "a", 11: "ab", 12: "ab", 31: "abc", 40: "abc"}
CT_SECONDARIES_A = (1, 5)
CT_PRIMARY_RANGE_A = (5, 32000)                  # PICS: AV3 "from 5 to 32000"
PT_RATIO_RANGE = (0.01, 320.0)                   # PICS: AV5
SYSTEM_VOLTAGE_PER_PT_RANGE_V = (82.0, 660.0)    # PICS: AV6/AV5 "from 82 to 660"
SYSTEM_VOLTAGE_RANGE_V = (82.0, 32000.0)         # PICS: "absolute range is 82-32000"
PERCENT_RANGE = (1, 99)                          # PICS: AV8, AV9
SUBINTERVALS_RANGE = (1, 6)                      # PICS: AV10
SUBINTERVAL_RANGE_CS = (1000, 3276700)           # PICS: AV11 "0 or 1000 to 3276700 in multiples of 100"
SUBINTERVAL_STEP_CS = 100


class OutOfRange(ValueError):
    """A written value the S4100 model or this meter cannot take (BACnet VALUE_OUT_OF_RANGE)."""


def _ll_per_ln(system_type: str) -> float:
    """System voltage (S4100: L-L, or L-N in type 10) per [metrology] nominal_voltage (L-N for wye, single
    and split phase; L-L for DELTA and 2L)."""
    if system_type in ("4W-WYE", "3W-WYE"):
        return math.sqrt(3.0)
    if system_type == "2L+1n":
        return 2.0                               # split phase: the two lines are 180° apart
    return 1.0


def system_code(config: Config) -> int:
    return CODE_OF_SYSTEM_TYPE[config["metrology"].system_type]


def read_settings(config: Config) -> dict[str, float]:
    """Present values of AV1-AV11 (by setting name) from the configuration."""
    m, r, b = config["metrology"], config["revenue"], config["bacnet"]
    sub_cs = 0.0 if r.demand_sync == "command" else r.demand_interval * 60.0 / r.demand_subintervals * 100.0
    return {
        "command": 0.0,                          # the S4100's command register always reads 0
        "system_type": float(system_code(config)),
        "ct_primary": float(m.ct_primary),
        "ct_secondary": float(m.ct_secondary),
        "pt_ratio": float(m.pt_primary / m.pt_secondary),
        "system_voltage": float(m.nominal_voltage * _ll_per_ln(m.system_type)),
        "display_units": 1.0 if m.pf_convention == "IEEE" else 0.0,
        "phase_loss_voltage": float(b.phase_loss_voltage),
        "phase_loss_imbalance": float(b.phase_loss_imbalance),
        "subintervals": float(r.demand_subintervals),
        "subinterval_length": sub_cs,
    }


S4100_OUTPUTS = 4          # AI82 reads 0-15: one bit per output of the S4100's four


def output_config(config: Config) -> int:
    """AI82 Output_Config: bit n-1 set when digital output n (1-4) has a source ([[io.output]] source other
    than none), so a front end sees which outputs the meter drives (the S4100's factory value is 11)."""
    return sum(1 << (e.number - 1) for e in config["io"].output
               if e.source != "none" and 1 <= e.number <= S4100_OUTPUTS)


def rated_current_a(config: Config) -> float:
    """The current range: the CT's primary rating (AV3), or In where that is larger (no CT, or a CT whose
    primary is below the rated current: [metrology] ct_primary 1 is a 1:1 connection)."""
    return max(float(config["metrology"].ct_primary), float(config["metrology"].nominal_current))


def max_power_kw(config: Config) -> float:
    """The S4100's theoretical maximum system power (AI76): system voltage, rated current (AV3, or In where
    larger) and system type at unity power factor (seed 003: 600 V L-L, 100 A, wye gives 103.92 kW)."""
    s = read_settings(config)
    code, volts, amps = int(s["system_type"]), s["system_voltage"], rated_current_a(config)
    factor = math.sqrt(3.0) if code in (31, 40) else 1.0
    return factor * volts * amps / 1000.0


def _integer(value: float, what: str) -> int:
    if not math.isfinite(value) or value != int(value):
        raise OutOfRange(f"{what} must be a whole number, got {value:g}")
    return int(value)


def _within(value: float, bounds: tuple[float, float], what: str) -> float:
    lo, hi = bounds
    if not math.isfinite(value) or not lo <= value <= hi:
        raise OutOfRange(f"{what} must be from {lo:g} to {hi:g}, got {value:g}")
    return value


def _demand(config: Config, subintervals: int, sub_cs: int) -> dict[str, Any]:
    """Revenue options for ``subintervals`` subintervals of ``sub_cs`` hundredths of a second each."""
    interval_s = subintervals * sub_cs / 100.0
    if interval_s % 60 or int(interval_s // 60) not in DEMAND_INTERVALS_MIN:
        raise OutOfRange(f"{subintervals} subintervals of {sub_cs / 100:g} s make a {interval_s / 60:g}-min "
                         f"demand interval; this meter's intervals are "
                         f"{', '.join(str(m) for m in DEMAND_INTERVALS_MIN)} min")
    changes: dict[str, Any] = {"demand_interval": int(interval_s // 60), "demand_subintervals": subintervals,
                               "demand_method": "block" if subintervals == 1 else "rolling"}
    if config["revenue"].demand_sync == "command":
        changes["demand_sync"] = "clock"
    return changes


def _system_type(value: float, config: Config) -> dict[str, dict[str, Any]]:
    code = _integer(value, "AV2 System_Type")
    if code not in SYSTEM_TYPE_CODES:
        raise OutOfRange(f"AV2 System_Type must be one of 10, 11, 12, 31, 40, got {code}")
    new_type = SYSTEM_TYPE_CODES[code]
    # keep the system voltage (AV6) as it reads: nominal_voltage is L-N or L-L by system type
    nominal = read_settings(config)["system_voltage"] / _ll_per_ln(new_type)
    return {"metrology": {"system_type": new_type, "nominal_voltage": round(nominal, 6)}}


def _ct_primary(value: float, config: Config) -> dict[str, dict[str, Any]]:
    return {"metrology": {"ct_primary": _within(value, CT_PRIMARY_RANGE_A, "AV3 CT_Ratio_Primary")}}


def _ct_secondary(value: float, config: Config) -> dict[str, dict[str, Any]]:
    amps = _integer(value, "AV4 CT_Ratio_Secondary")
    if amps not in CT_SECONDARIES_A:
        raise OutOfRange(f"AV4 CT_Ratio_Secondary must be 1 or 5 (A; this meter takes current-output CTs), "
                         f"got {amps}")
    return {"metrology": {"ct_secondary": float(amps)}}


def _pt_ratio(value: float, config: Config) -> dict[str, dict[str, Any]]:
    m = config["metrology"]
    ratio = _within(value, PT_RATIO_RANGE, "AV5 PT_Ratio")
    primary = ratio * m.pt_secondary
    if not 1.0 <= primary <= 999_999.0:
        raise OutOfRange(f"AV5 PT_Ratio {ratio:g} with a {m.pt_secondary:g}-V secondary makes a "
                         f"{primary:g}-V primary; [metrology] pt_primary allows 1 to 999999 V")
    return {"metrology": {"pt_primary": primary}}


def _system_voltage(value: float, config: Config) -> dict[str, dict[str, Any]]:
    volts = _within(value, SYSTEM_VOLTAGE_RANGE_V, "AV6 System_Voltage")
    per_pt = volts / read_settings(config)["pt_ratio"]
    lo, hi = SYSTEM_VOLTAGE_PER_PT_RANGE_V
    if not lo <= per_pt <= hi:
        raise OutOfRange(f"AV6 System_Voltage / AV5 PT_Ratio must be from {lo:g} to {hi:g}, got "
                         f"{per_pt:g} (set AV5 first)")
    return {"metrology": {"nominal_voltage": round(volts / _ll_per_ln(config["metrology"].system_type), 6)}}


def _display_units(value: float, config: Config) -> dict[str, dict[str, Any]]:
    code = _integer(value, "AV7 Display_Units")
    if code not in (0, 1):
        raise OutOfRange(f"AV7 Display_Units must be 0 (IEC) or 1 (IEEE), got {code}")
    return {"metrology": {"pf_convention": "IEEE" if code else "IEC"}}


def _percent(setting: str, what: str) -> Any:
    def plan(value: float, config: Config) -> dict[str, dict[str, Any]]:
        return {"bacnet": {setting: _integer(_within(value, PERCENT_RANGE, what), what)}}
    return plan


def _subintervals(value: float, config: Config) -> dict[str, dict[str, Any]]:
    n = _integer(_within(value, SUBINTERVALS_RANGE, "AV10 Subintervals"), "AV10 Subintervals")
    if config["revenue"].demand_sync == "command":
        return {"revenue": {"demand_subintervals": n}}     # sync to comms: the S4100 ignores AV10
    return {"revenue": _demand(config, n, int(read_settings(config)["subinterval_length"]))}


def _subinterval_length(value: float, config: Config) -> dict[str, dict[str, Any]]:
    return {"revenue": subinterval_changes(value, config)}


_PLANS = {
    "system_type": _system_type, "ct_primary": _ct_primary, "ct_secondary": _ct_secondary, "pt_ratio": _pt_ratio,
    "system_voltage": _system_voltage, "display_units": _display_units,
    "phase_loss_voltage": _percent("phase_loss_voltage", "AV8 Phase_Loss_Voltage_Threshold"),
    "phase_loss_imbalance": _percent("phase_loss_imbalance", "AV9 Phase_Loss_Imbalance_Threshold"),
    "subintervals": _subintervals, "subinterval_length": _subinterval_length,
}


def plan_write(setting: str, value: float, config: Config) -> dict[str, dict[str, Any]]:
    """The configuration changes that writing ``value`` to the AV of ``setting`` makes; raises OutOfRange."""
    plan = _PLANS.get(setting)
    if plan is None:
        raise OutOfRange(f"{setting} is not a writable setting")
    return plan(value, config)


def subinterval_changes(value: float, config: Config) -> dict[str, Any]:
    """Revenue changes for a write of AV11 or of any trend log's Log_Interval (the S4100 ties them)."""
    cs = _integer(value, "AV11 Subinterval_Length")
    if cs == 0:
        return {"demand_sync": "command"}
    lo, hi = SUBINTERVAL_RANGE_CS
    if not lo <= cs <= hi or cs % SUBINTERVAL_STEP_CS:
        raise OutOfRange(f"AV11 Subinterval_Length must be 0 or {lo} to {hi} in multiples of "
                         f"{SUBINTERVAL_STEP_CS} (hundredths of a second), got {cs}")
    return _demand(config, int(config["revenue"].demand_subintervals), cs)


# What each AV reads and what a write accepts, for docs/bacnet.md.
SETTING_DOCS: dict[str, tuple[str, str]] = {
    "command": ("30078, 21211, 21212, 16498", "runs a meter command; reads 0"),
    "system_type": ("10, 11, 12, 31, 40", "`[metrology] system_type` (SINGLE, 2L, 2L+1n, DELTA, 4W-WYE; "
                    "3W-WYE reads 31); `nominal_voltage` is kept so that AV6 reads the same"),
    "ct_primary": ("5 to 32000", "`[metrology] ct_primary`"),
    "ct_secondary": ("1, 5", "`[metrology] ct_secondary` (the S4100's 1 V / 1/3 V CT types do not apply: "
                     "this meter takes current-output CTs)"),
    "pt_ratio": ("0.01 to 320, and a primary of 1 to 999999 V", "`[metrology] pt_primary` / `pt_secondary` "
                 "(a write sets `pt_primary`)"),
    "system_voltage": ("82 to 32000, AV6 / AV5 from 82 to 660", "`[metrology] nominal_voltage` (L-L; L-N in "
                       "type 10; converted to the L-N nominal for wye and split phase)"),
    "display_units": ("0 (IEC), 1 (IEEE)", "`[metrology] pf_convention`"),
    "phase_loss_voltage": ("1 to 99", "`[bacnet] phase_loss_voltage`"),
    "phase_loss_imbalance": ("1 to 99", "`[bacnet] phase_loss_imbalance`"),
    "subintervals": ("1 to 6, making an interval of " + ", ".join(str(m) for m in DEMAND_INTERVALS_MIN)
                     + " min", "`[revenue] demand_subintervals` (1: block demand, more: rolling block)"),
    "subinterval_length": ("0, or 1000 to 3276700 in steps of 100, making an allowed interval",
                           "`[revenue] demand_interval` / `demand_subintervals` × 6000; 0 = `demand_sync = "
                           "\"command\"` (sync to comms)"),
}
