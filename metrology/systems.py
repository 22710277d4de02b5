"""Wiring (system types): how the seven inputs become phase voltages, line voltages and currents.

Every system type is one linear map from the inputs, in ADE9000 burst order
``IA VA IB VB IC VC IN``, to eleven derived signals (``SIGNALS``). Everything downstream works
on the derived signals and never asks which system it is in. Where a system has no neutral
(DELTA, 2L) the L-N voltages are taken to a virtual neutral (va + vb + vc = 0), so per-phase
powers still add up to the Blondel total.

Inputs per system type (SPEC §2, ION p.66, S4100 types 10/11/12/31/40):

========  ====================================  =============================
type      voltage inputs                        current inputs
========  ====================================  =============================
4W-WYE    VA, VB, VC to neutral                 IA, IB, IC, IN
3W-WYE    VA, VB, VC to the meter reference     IA, IB, IC
DELTA     VA = V(A-B), VC = V(C-B); VB unused   IA, IB, IC
SINGLE    VA to neutral                         IA
2L        VA = V(A-B)                           IA (IB = -IA)
2L+1n     VA, VB to neutral (split phase)       IA, IB, IN
========  ====================================  =============================
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

INPUTS = ("IA", "VA", "IB", "VB", "IC", "VC", "IN")
IA, VA, IB, VB, IC, VC, IN = range(7)

SIGNALS = ("va", "vb", "vc", "vab", "vbc", "vca", "ia", "ib", "ic", "in", "ires")
V_LN = slice(0, 3)
V_LL = slice(3, 6)
I_PH = slice(6, 9)
I_N = 9
I_RES = 10
N_SIGNALS = len(SIGNALS)


@dataclass(frozen=True)
class Wiring:
    system_type: str
    matrix: np.ndarray          # (7, 11): derived = inputs @ matrix
    phases: tuple[bool, bool, bool]       # which of a, b, c exist
    line_pairs: tuple[bool, bool, bool]   # which of ab, bc, ca exist
    neutral_measured: bool
    reference: np.ndarray       # (7,): input weights of the frequency reference signal
    n_phases: int
    # The meter's elements: the phases whose voltage input x current input (what an ADE9000 phase accumulates)
    # add up to the system's power. DELTA is a two-element (Blondel) meter: V(A-B) x IA + V(C-B) x IC, phase B
    # is no element.
    elements: tuple[bool, bool, bool] = (True, True, True)
    # What each chip phase's V x I (its apparent energy) counts for in the system's arithmetic apparent power,
    # which takes each phase current against its phase voltage. The elements' own, except for DELTA: there the
    # chip meters every phase current against a line voltage (ACCMODE.VCONSEL 1: V(A-B) x IA, V(A-C) x IB,
    # V(C-B) x IC), √3 times the phase voltage from the virtual neutral, exactly so while the line voltages are
    # balanced, whatever the currents.
    chip_va: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def signal_present(self) -> np.ndarray:
        """(11,) bool: which derived signals carry a real quantity in this system."""
        p, ll = self.phases, self.line_pairs
        return np.array([*p, *ll, *p, self.neutral_measured, self.n_phases > 1])


def wiring(system_type: str) -> Wiring:
    m = np.zeros((7, len(SIGNALS)))
    col = {name: i for i, name in enumerate(SIGNALS)}

    def puts(**signals: Mapping[str, float]) -> None:
        """Each derived signal as a weighted sum of inputs: ``va={"VA": 1}``."""
        for signal, weights in signals.items():
            for inp, w in weights.items():
                m[INPUTS.index(inp), col[signal]] = w

    if system_type in ("4W-WYE", "3W-WYE"):
        puts(va={"VA": 1}, vb={"VB": 1}, vc={"VC": 1}, ia={"IA": 1}, ib={"IB": 1}, ic={"IC": 1})
        phases, neutral = (True, True, True), system_type == "4W-WYE"
    elif system_type == "DELTA":
        # virtual neutral from the two measured line voltages V(A-B) and V(C-B)
        puts(va={"VA": 2 / 3, "VC": -1 / 3}, vb={"VA": -1 / 3, "VC": -1 / 3}, vc={"VA": -1 / 3, "VC": 2 / 3},
             ia={"IA": 1}, ib={"IB": 1}, ic={"IC": 1})
        phases, neutral = (True, True, True), False
    elif system_type == "SINGLE":
        puts(va={"VA": 1}, ia={"IA": 1})
        phases, neutral = (True, False, False), False
    elif system_type == "2L":
        puts(va={"VA": 0.5}, vb={"VA": -0.5}, ia={"IA": 1}, ib={"IA": -1})
        phases, neutral = (True, True, False), False
    elif system_type == "2L+1n":
        puts(va={"VA": 1}, vb={"VB": 1}, ia={"IA": 1}, ib={"IB": 1})
        phases, neutral = (True, True, False), True
    else:
        raise ValueError(f"unknown system type {system_type!r}")
    if neutral:
        puts(**{"in": {"IN": 1}})      # "in" is a keyword of Python
    # line voltages and residual current follow from the phase signals
    m[:, col["vab"]] = m[:, col["va"]] - m[:, col["vb"]]
    m[:, col["vbc"]] = m[:, col["vb"]] - m[:, col["vc"]]
    m[:, col["vca"]] = m[:, col["vc"]] - m[:, col["va"]]
    m[:, col["ires"]] = m[:, col["ia"]] + m[:, col["ib"]] + m[:, col["ic"]]
    n = sum(phases)
    line_pairs = (phases[0] and phases[1], phases[1] and phases[2], phases[2] and phases[0])
    if n == 3:   # Clarke alpha: in phase with va, survives the loss of any one phase
        ref = (2 * m[:, 0] - m[:, 1] - m[:, 2]) / 3
    elif n == 2:  # split phase / 2L: vb is opposite va
        ref = (m[:, 0] - m[:, 1]) / 2
    else:
        ref = m[:, 0].copy()
    elements = (True, False, True) if system_type == "DELTA" else (True, False, False) if system_type == "2L" \
        else phases
    a, b, c = (1 / 3 ** 0.5,) * 3 if system_type == "DELTA" else (float(e) for e in elements)
    chip_va = (a, b, c)
    return Wiring(system_type, m, phases, line_pairs, neutral, ref, n, elements, chip_va)
