"""Power per phase and total: W, var, VA (arithmetic and vectorial), true and displacement PF, quadrant.

Works on any leading shape (one cycle, a batch of cycles, an aggregated interval); the last axis
is the phase (a, b, c) on input and (a, b, c, total) on output.

Conventions (SPEC §2, JEM L6317 "Formulas"):
- W = mean(v*i): harmonics included.
- var = Im(V1 conj(I1)): fundamental only (the SPEC default); positive when the current lags
  (inductive load, quadrants 1 and 3 of the delivered/received plane).
- VA arithmetic = Vrms * Irms per phase, their sum for the total; VA vectorial = sqrt(W² + var²).
- True PF = W / VA arithmetic; displacement PF = cos of the angle between V1 and I1.
  IEEE: PF positive when lagging (Q1, Q3), negative when leading (Q2, Q4), magnitude |W|/VA.
  IEC: PF has the sign of W.
- Quadrants: 1 (W>=0, var>=0), 2 (W<0, var>=0), 3 (W<0, var<0), 4 (W>=0, var<0).
- No creep: a phase whose current is below the creep threshold carries no W, var or VA.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PowerValues:
    p: np.ndarray           # (..., 4) W; index 3 is the total
    q: np.ndarray           # (..., 4) var (fundamental)
    s_arith: np.ndarray     # (..., 4) VA
    s_vect: np.ndarray      # (..., 4) VA
    pf: np.ndarray          # (..., 4) true PF, signed by convention
    dpf: np.ndarray         # (..., 4) displacement PF, signed by convention
    quadrant: np.ndarray    # (..., 4) 1..4
    qh: np.ndarray          # (..., 4) Q-hour power W/2 + var*sqrt(3)/2 (JEM)


def quadrant(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.where(p >= 0, np.where(q >= 0, 1, 4), np.where(q >= 0, 2, 3)).astype(np.int8)


def signed_pf(p: np.ndarray, q: np.ndarray, s: np.ndarray, convention: str) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        mag = np.where(s > 0, np.abs(p) / s, np.nan)
    if convention == "IEEE":
        sign = np.where(p * q >= 0, 1.0, -1.0)
    else:
        sign = np.where(p >= 0, 1.0, -1.0)
    return np.minimum(mag, 1.0) * sign


def compute_power(v_ms: np.ndarray, i_ms: np.ndarray, vi: np.ndarray, s1: np.ndarray,
                  present: np.ndarray, creep_current: float, convention: str) -> PowerValues:
    """Power from per-phase mean squares, mean v*i and fundamental complex power V1 conj(I1).

    ``v_ms``, ``i_ms``, ``vi``: (..., 3); ``s1``: (..., 3) complex; ``present``: (3,) bool phases.
    """
    live = present & (np.sqrt(i_ms) >= creep_current)
    p = np.where(live, vi, 0.0)
    q = np.where(live, s1.imag, 0.0)
    p1 = np.where(live, s1.real, 0.0)
    sa = np.where(live, np.sqrt(v_ms * i_ms), 0.0)

    def with_total(x: np.ndarray) -> np.ndarray:
        return np.concatenate((x, x.sum(axis=-1, keepdims=True)), axis=-1)

    p4, q4, p14, sa4 = with_total(p), with_total(q), with_total(p1), with_total(sa)
    sv4 = np.hypot(p4, q4)
    s1mag = np.hypot(p14, q4)
    return PowerValues(
        p=p4, q=q4, s_arith=sa4, s_vect=sv4,
        pf=signed_pf(p4, q4, sa4, convention),
        dpf=signed_pf(p14, q4, s1mag, convention),
        quadrant=quadrant(p4, q4),
        qh=p4 / 2 + q4 * (np.sqrt(3) / 2),
    )
