"""From pipeline results to the published keys of the point map (firmware/points/*.toml).

``PUBLISHED`` lists every key metrology publishes with how it is computed, its kind and size; its unit and
description are declared once, in the point map (basic.toml for the basic set, flicker.toml for flicker,
measurements.toml for the rest), and ``tests/unit/test_metrology_publish.py`` checks that every key is there with the same kind and
size. ``publish`` turns the values of
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


@dataclass(frozen=True)
class Published:
    name: str
    kind: str                   # the point map's kind: "instantaneous" values of absent signals are NaN
    get: Callable[[Values, EnergyIncrement], float | np.ndarray]
    size: int = 1


def _f(x: float | np.floating) -> float:
    return float(x)


Add = Callable[..., None]


def _table() -> list[Published]:
    t: list[Published] = []

    def add(name: str, get: Callable, kind: str = "instantaneous", size: int = 1) -> None:
        t.append(Published(name, kind, get, size))

    _basic(add)
    _quality(add)
    _flicker(add)
    _energy(add)
    return t


def _basic(add: Add) -> None:
    for k, ph in enumerate(PHASES):
        add(f"i_{ph}", lambda v, e, k=k: _f(v["i"][k]))
        add(f"v_{ph}n", lambda v, e, k=k: _f(v["v_ln"][k]))
    add("i_n", lambda v, e: _f(v["i_n"][0]))
    add("i_res", lambda v, e: _f(v["i_res"][0]))
    add("i_avg", lambda v, e: _nanmean(v["i"], v))
    for k, pair in enumerate(("ab", "bc", "ca")):
        add(f"v_{pair}", lambda v, e, k=k: _f(v["v_ll"][k]))
    add("v_ll_avg", lambda v, e: _nanmean(v["v_ll"], v, ll=True))
    add("v_ln_avg", lambda v, e: _nanmean(v["v_ln"], v))
    for key in ("p", "q", "s"):
        for k, ph in enumerate(PHASES):
            add(f"{key}_{ph}", lambda v, e, key=key, k=k: _f(v[key][k]))
        add(f"{key}_total", lambda v, e, key=key: _f(v[key][3]))
    add("s_vect_total", lambda v, e: _f(v["s_vect"][3]))
    for k, ph in enumerate(PHASES):
        add(f"s_vect_{ph}", lambda v, e, k=k: _f(v["s_vect"][k]))
        add(f"quadrant_{ph}", lambda v, e, k=k: _f(v["quadrant"][k]), "status")
    for k, ph in enumerate(PHASES):
        add(f"pf_{ph}", lambda v, e, k=k: _f(v["pf"][k]))
        add(f"dpf_{ph}", lambda v, e, k=k: _f(v["dpf"][k]))
    add("pf_total", lambda v, e: _f(v["pf"][3]))
    add("dpf_total", lambda v, e: _f(v["dpf"][3]))
    add("quadrant_total", lambda v, e: _f(v["quadrant"][3]), "status")
    add("frequency", lambda v, e: _f(v["freq_10s"][0]))
    add("frequency_flagged", lambda v, e: _f(v["freq_10s_flagged"][0]), "status")
    add("frequency_1cycle", lambda v, e: _f(v["freq_1cycle"][0]))
    add("frequency_cycle", lambda v, e: _f(v["freq"][0]))


def _quality(add: Add) -> None:
    for j, name in enumerate(SIGNAL_NAMES):
        add(f"thd_{name}", lambda v, e, j=j: _f(v["thd"][j]))
        add(f"harmonics_{name}", lambda v, e, j=j: np.asarray(v["h_mag"][j], dtype=np.float64), size=64)
        add(f"crest_factor_{name}", lambda v, e, j=j: _f(v["crest"][j]))
        if name != "v_an":
            add(f"angle_{name}", lambda v, e, j=j: _f(v["angle"][j]))
        for form in ("rms", "odd", "even"):
            add(f"thd_{form}_{name}", lambda v, e, j=j, form=form: _f(v[f"thd_{form}"][j]))
        add(f"harmonic_angles_{name}", lambda v, e, j=j: np.asarray(v["h_angle"][j], dtype=np.float64), size=64)
        add(f"interharmonics_{name}", lambda v, e, j=j: np.asarray(v["h_inter"][j], dtype=np.float64), size=64)
    for j, name in enumerate(("i_a", "i_b", "i_c"), start=6):
        add(f"tdd_{name}", lambda v, e, j=j: _f(v["tdd"][j]))
        add(f"k_factor_{name[2]}", lambda v, e, j=j: _f(v["k_factor"][j]))
    for q in ("v", "i"):
        for k, seq in enumerate(("zero", "pos", "neg")):
            add(f"{q}_seq_{seq}", lambda v, e, q=q, k=k: _f(v[f"{q}_seq"][k]))
        add(f"{q}_unbalance_u2", lambda v, e, q=q: _f(v[f"{q}_u2"][0]))
        add(f"{q}_unbalance_u0", lambda v, e, q=q: _f(v[f"{q}_u0"][0]))
    for name, key in (("v_ln_unbalance_worst", "v_unbal"), ("v_ll_unbalance_worst", "v_ll_unbal"),
                      ("i_unbalance_worst", "i_unbal")):
        add(name, lambda v, e, key=key: _f(v[key][0]))


def _flicker(add: Add) -> None:
    # points in flicker.toml; the pipeline sets absent phases to NaN
    for key in ("pinst", "pst", "plt"):
        for k, ph in enumerate(PHASES):
            add(f"{key}_{ph}", lambda v, e, key=key, k=k: _f(v[key][k]))


def _energy(add: Add) -> None:
    for base in ("wh", "varh", "vah"):
        add(f"{base}_delivered", lambda v, e, b=base: _f(getattr(e, f"{b}_del")[3]), "total")
        add(f"{base}_received", lambda v, e, b=base: _f(getattr(e, f"{b}_rec")[3]), "total")
        add(f"{base}_del_plus_rec", lambda v, e, b=base: _f(e.absolute(b)[3]), "total")
        add(f"{base}_del_minus_rec", lambda v, e, b=base: _f(e.net(b)[3]), "total")
        for k, ph in enumerate(PHASES):
            add(f"{base}_delivered_{ph}", lambda v, e, b=base, k=k: _f(getattr(e, f"{b}_del")[k]), "total")
            add(f"{base}_received_{ph}", lambda v, e, b=base, k=k: _f(getattr(e, f"{b}_rec")[k]), "total")
    for n in range(1, 5):
        add(f"varh_q{n}", lambda v, e, n=n: _f(getattr(e, f"varh_q{n}")[3]), "total")
        for k, ph in enumerate(PHASES):
            add(f"varh_q{n}_{ph}", lambda v, e, n=n, k=k: _f(getattr(e, f"varh_q{n}")[k]), "total")
    for base in ("vah_vect", "qh", "ah", "v2h", "i2h"):
        add(f"{base}_delivered", lambda v, e, b=base: _f(getattr(e, f"{b}_del")[3]), "total")
        add(f"{base}_received", lambda v, e, b=base: _f(getattr(e, f"{b}_rec")[3]), "total")
        for k, ph in enumerate(PHASES):
            add(f"{base}_delivered_{ph}", lambda v, e, b=base, k=k: _f(getattr(e, f"{b}_del")[k]), "total")
            add(f"{base}_received_{ph}", lambda v, e, b=base, k=k: _f(getattr(e, f"{b}_rec")[k]), "total")


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
        absent += [f"{q}_{ph}" for ph, ok in zip(PHASES, present[:3]) if not ok for q in ("p", "q", "s", "s_vect", "pf", "dpf")]
        for p in PUBLISHED:
            if any(p.name == n or p.name.endswith("_" + n) for n in absent) and p.kind == "instantaneous":
                out[p.name] = np.full(p.size, math.nan) if p.size > 1 else math.nan
    return out
