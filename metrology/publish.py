"""From pipeline results to the published keys of the point map (firmware/points/*.toml).

``PUBLISHED`` lists every key metrology publishes, with its unit, kind and description; the point
map holds the same names (basic.toml for the basic set, measurements.toml for the rest), and
``tests/unit/test_metrology_publish.py`` checks that the two agree. ``publish`` turns the values of
one interval and the cumulative energy registers into ``{name: float | array}``; absent phases and
quantities without a value are NaN (QNAN on the protocols).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from metrology.energy import EnergyIncrement

Values = dict[str, np.ndarray]
PHASES = "abc"
V_NAMES = ("v_an", "v_bn", "v_cn", "v_ab", "v_bc", "v_ca")
I_NAMES = ("i_a", "i_b", "i_c", "i_n")
SIGNAL_NAMES = V_NAMES + I_NAMES        # index = harmonics signal index (va vb vc vab vbc vca ia ib ic in)
SIGNAL_TEXT = ("V A-N", "V B-N", "V C-N", "V A-B", "V B-C", "V C-A", "I A", "I B", "I C", "I N")


@dataclass(frozen=True)
class Published:
    name: str
    unit: str
    kind: str
    description: str
    get: Callable[[Values, EnergyIncrement], float | np.ndarray]
    size: int = 1


def _f(x: float | np.floating) -> float:
    return float(x)


def _table() -> list[Published]:
    t: list[Published] = []

    def add(name: str, unit: str, desc: str, get: Callable, kind: str = "instantaneous", size: int = 1) -> None:
        t.append(Published(name, unit, kind, desc, get, size))

    for k, ph in enumerate(PHASES):
        add(f"i_{ph}", "A", f"Current, phase {ph.upper()}", lambda v, e, k=k: _f(v["i"][k]))
        add(f"v_{ph}n", "V", f"Voltage {ph.upper()}-N", lambda v, e, k=k: _f(v["v_ln"][k]))
    add("i_n", "A", "Neutral current, measured (I4)", lambda v, e: _f(v["i_n"][0]))
    add("i_res", "A", "Residual current, calculated IA+IB+IC", lambda v, e: _f(v["i_res"][0]))
    add("i_avg", "A", "Current, average of the phases", lambda v, e: _nanmean(v["i"], v))
    for k, pair in enumerate(("ab", "bc", "ca")):
        add(f"v_{pair}", "V", f"Voltage {pair[0].upper()}-{pair[1].upper()}", lambda v, e, k=k: _f(v["v_ll"][k]))
    add("v_ll_avg", "V", "Line-to-line voltage, average", lambda v, e: _nanmean(v["v_ll"], v, ll=True))
    add("v_ln_avg", "V", "Line-to-neutral voltage, average", lambda v, e: _nanmean(v["v_ln"], v))
    for key, unit, text in (("p", "W", "Active power"), ("q", "var", "Reactive power (fundamental)"),
                            ("s", "VA", "Apparent power (arithmetic)")):
        for k, ph in enumerate(PHASES):
            add(f"{key}_{ph}", unit, f"{text}, phase {ph.upper()}", lambda v, e, key=key, k=k: _f(v[key][k]))
        add(f"{key}_total", unit, f"{text}, total", lambda v, e, key=key: _f(v[key][3]))
    add("s_vect_total", "VA", "Apparent power, vectorial sqrt(W² + var²), total", lambda v, e: _f(v["s_vect"][3]))
    for k, ph in enumerate(PHASES):
        add(f"pf_{ph}", "", f"True power factor, phase {ph.upper()}", lambda v, e, k=k: _f(v["pf"][k]))
        add(f"dpf_{ph}", "", f"Displacement power factor, phase {ph.upper()}", lambda v, e, k=k: _f(v["dpf"][k]))
    add("pf_total", "", "True power factor, total", lambda v, e: _f(v["pf"][3]))
    add("dpf_total", "", "Displacement power factor, total", lambda v, e: _f(v["dpf"][3]))
    add("quadrant_total", "", "Quadrant of the total power (1..4)", lambda v, e: _f(v["quadrant"][3]), "status")
    add("frequency", "Hz", "Frequency, 10-s value (IEC 61000-4-30)", lambda v, e: _f(v["freq_10s"][0]))
    add("frequency_flagged", "", "The 10-s frequency's interval lost samples (IEC 61000-4-30 flag; 1 = flagged)",
        lambda v, e: _f(v["freq_10s_flagged"][0]), "status")
    add("frequency_1cycle", "Hz", "Frequency of the last whole cycle measured (a value from the first second)",
        lambda v, e: _f(v["freq_1cycle"][0]))
    add("frequency_cycle", "Hz", "Frequency, mean of the per-cycle values over the interval",
        lambda v, e: _f(v["freq"][0]))
    for j, name in enumerate(SIGNAL_NAMES):
        text = SIGNAL_TEXT[j]
        add(f"thd_{name}", "%", f"THD of {text} (HC/H1, orders 2..63)", lambda v, e, j=j: _f(v["thd"][j]))
        add(f"harmonics_{name}", "V" if name[0] == "v" else "A",
            f"Harmonic RMS magnitudes of {text} by order ([0] = DC, [1] = fundamental)",
            lambda v, e, j=j: np.asarray(v["h_mag"][j], dtype=np.float64), size=64)
        add(f"crest_factor_{name}", "", f"Crest factor of {text} (peak / RMS)", lambda v, e, j=j: _f(v["crest"][j]))
        if name != "v_an":
            add(f"angle_{name}", "deg", f"Fundamental phase angle of {text} relative to V A-N",
                lambda v, e, j=j: _f(v["angle"][j]))
    for j, name in enumerate(("i_a", "i_b", "i_c"), start=6):
        add(f"tdd_{name}", "%", f"Total demand distortion of {SIGNAL_TEXT[j]} (IEEE 519)",
            lambda v, e, j=j: _f(v["tdd"][j]))
        add(f"k_factor_{name[2]}", "", f"K-factor of {SIGNAL_TEXT[j]} (sum In^2 n^2 / sum In^2)",
            lambda v, e, j=j: _f(v["k_factor"][j]))
    for q in ("v", "i"):
        big = "V" if q == "v" else "A"
        for k, seq in enumerate(("zero", "pos", "neg")):
            add(f"{q}_seq_{seq}", big, f"{'Voltage' if q == 'v' else 'Current'} {seq} sequence magnitude",
                lambda v, e, q=q, k=k: _f(v[f"{q}_seq"][k]))
        add(f"{q}_unbalance_u2", "%", "Negative-sequence unbalance (IEC 61000-4-30)",
            lambda v, e, q=q: _f(v[f"{q}_u2"][0]))
        add(f"{q}_unbalance_u0", "%", "Zero-sequence unbalance", lambda v, e, q=q: _f(v[f"{q}_u0"][0]))
    for name, key, text in (("v_ln_unbalance_worst", "v_unbal", "Line-to-neutral voltage"),
                            ("v_ll_unbalance_worst", "v_ll_unbal", "Line-to-line voltage"),
                            ("i_unbalance_worst", "i_unbal", "Current")):
        add(name, "%", f"{text} unbalance, largest deviation from the average, in % of the average",
            lambda v, e, key=key: _f(v[key][0]))
    energy = (("wh", "Wh", "Active energy"), ("varh", "varh", "Reactive energy"), ("vah", "VAh", "Apparent energy"))
    for base, unit, text in energy:
        add(f"{base}_delivered", unit, f"{text} delivered, total", lambda v, e, b=base: _f(getattr(e, f"{b}_del")[3]),
            "total")
        add(f"{base}_received", unit, f"{text} received, total", lambda v, e, b=base: _f(getattr(e, f"{b}_rec")[3]),
            "total")
        add(f"{base}_del_plus_rec", unit, f"{text} delivered + received, total",
            lambda v, e, b=base: _f(e.absolute(b)[3]), "total")
        add(f"{base}_del_minus_rec", unit, f"{text} delivered - received, total",
            lambda v, e, b=base: _f(e.net(b)[3]), "total")
        for k, ph in enumerate(PHASES):
            add(f"{base}_delivered_{ph}", unit, f"{text} delivered, phase {ph.upper()}",
                lambda v, e, b=base, k=k: _f(getattr(e, f"{b}_del")[k]), "total")
            add(f"{base}_received_{ph}", unit, f"{text} received, phase {ph.upper()}",
                lambda v, e, b=base, k=k: _f(getattr(e, f"{b}_rec")[k]), "total")
    for n in range(1, 5):
        add(f"varh_q{n}", "varh", f"Reactive energy in quadrant {n}, total",
            lambda v, e, n=n: _f(getattr(e, f"varh_q{n}")[3]), "total")
    for base, unit, text in (("vah_vect", "VAh", "Apparent energy (vectorial)"), ("qh", "Qh", "Q-hours"),
                             ("ah", "Ah", "Ampere-hours"), ("v2h", "V2h", "Volt-squared hours"),
                             ("i2h", "A2h", "Ampere-squared hours")):
        add(f"{base}_delivered", unit, f"{text} delivered, total",
            lambda v, e, b=base: _f(getattr(e, f"{b}_del")[3]), "total")
        add(f"{base}_received", unit, f"{text} received, total",
            lambda v, e, b=base: _f(getattr(e, f"{b}_rec")[3]), "total")
    return t


def _nanmean(x: np.ndarray, v: Values, ll: bool = False) -> float:
    finite = x[np.isfinite(x) & (x > 0)]
    return float(finite.mean()) if finite.size else math.nan


PUBLISHED: tuple[Published, ...] = tuple(_table())


def publish(values: Values, totals: EnergyIncrement, present: np.ndarray | None = None) -> dict[str, float | np.ndarray]:
    """Published keys for one interval's ``values`` and the cumulative energy ``totals``.

    ``present`` (11,) marks which derived signals exist in the system type (``Wiring.signal_present``);
    per-signal keys of absent signals are NaN.
    """
    out: dict[str, float | np.ndarray] = {}
    for p in PUBLISHED:
        try:
            out[p.name] = p.get(values, totals)
        except KeyError:          # e.g. no 10/12-cycle window finished yet: no harmonics
            out[p.name] = np.full(p.size, math.nan) if p.size > 1 else math.nan
    if present is not None:
        absent = [n for n, ok in zip(SIGNAL_NAMES, present[:10]) if not ok]
        absent += [f"{q}_{ph}" for ph, ok in zip(PHASES, present[:3]) if not ok for q in ("p", "q", "s", "pf", "dpf")]
        for p in PUBLISHED:
            if any(p.name == n or p.name.endswith("_" + n) for n in absent) and p.kind == "instantaneous":
                out[p.name] = np.full(p.size, math.nan) if p.size > 1 else math.nan
    return out
