"""Numbers for the display: auto-scaled units, fixed significant digits, marks for missing and overrange values,
and the IEEE or IEC labels (SPEC §6: "overrange handling; auto-scaling of units; IEEE/IEC labels").
The unit's prefix (k, M, G) follows the value, so labels name the quantity (W, VAR, VA or P, Q, S)."""
from __future__ import annotations

import math
from dataclasses import dataclass

MISSING = "----"                  # value not available (NaN): the same as Modbus "not available"
OVERRANGE = "OVER"                # beyond the input's measuring range: the number would not be trustworthy
PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"))
# Label sets: IEEE (ANSI meters) and IEC 61557-12 / IEC 60050 names for the same quantities.
LABELS = {
    "ieee": {"v_an": "Van", "v_bn": "Vbn", "v_cn": "Vcn", "v_ab": "Vab", "v_bc": "Vbc", "v_ca": "Vca",
             "i_a": "Ia", "i_b": "Ib", "i_c": "Ic", "i_n": "In", "p": "W", "q": "VAR", "s": "VA", "pf": "PF",
             "phase_a": "A", "phase_b": "B", "phase_c": "C", "freq": "Freq", "thd": "THD"},
    "iec": {"v_an": "U1", "v_bn": "U2", "v_cn": "U3", "v_ab": "U12", "v_bc": "U23", "v_ca": "U31",
            "i_a": "I1", "i_b": "I2", "i_c": "I3", "i_n": "IN", "p": "P", "q": "Q", "s": "S", "pf": "PF",
            "phase_a": "L1", "phase_b": "L2", "phase_c": "L3", "freq": "f", "thd": "THD"},
}


@dataclass(frozen=True)
class Shown:
    text: str
    unit: str
    over: bool = False


def scaled(value: float, unit: str, digits: int = 5, limit: float = math.inf) -> Shown:
    """``value`` with an SI prefix so that at most ``digits`` significant digits show; OVER past ``limit``."""
    if value is None or not math.isfinite(value):
        return Shown(MISSING, unit)
    if abs(value) > limit:
        return Shown(OVERRANGE, unit, True)
    prefix = ""
    shown = value
    if unit not in ("%", "", "Hz", "°"):
        for factor, p in PREFIXES:
            if abs(value) >= factor:
                shown, prefix = value / factor, p
                break
    whole = len(str(int(abs(shown)))) if abs(shown) >= 1 else 1
    decimals = max(digits - whole, 0)
    return Shown(f"{shown:.{decimals}f}", prefix + unit)
