"""Harmonics per IEC 61000-4-7 on synchronous 10/12-cycle windows, distortion indices, sequence components.

The window holds N whole cycles of 512 samples each, so DFT bin ``h*N`` is harmonic ``h`` and the
bins between are the 5 Hz interharmonic lines. Magnitudes are RMS values:

- harmonic subgroup G_sg,h = sqrt(C²(hN-1) + C²(hN) + C²(hN+1))  (IEC 61000-4-7 5.6, Class I);
- centred interharmonic subgroup C_isg,h = sqrt(sum C²(hN+k), k = 2..N-2), between h and h+1;
- angle of harmonic h relative to the VA fundamental: phi_h - h * phi_1(VA), in degrees
  (invariant to where the window starts; for h = 1 the plain angle difference to VA).

Indices over orders 2..63 (SPEC §2, JEM "Formulas"): THD = HC/H1, thd = HC/RMS, odd and even THD
(TOHD, TEHD) -- the three ratios over H1 are not available (NaN) while H1 is below ``MIN_FUNDAMENTAL_PCT`` of
the signal's nominal value (Udin for voltages, In for currents, the neutral's included): a neutral that carries
almost no fundamental would otherwise read millions of percent of noise -- TDD = HC / I_L (IEEE 519), K-factor = sum h² I_h² / sum I_h², crest factor = peak /
RMS. Symmetrical components use a = e^{j 120°} (JEM "Sequence Components"); with phase order ACB
the roles of b and c swap so that V1 is the sequence the installation normally runs in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from metrology import _kernels
from metrology.systems import I_PH

MAX_ORDER = 63
N_ORDERS = MAX_ORDER + 1                 # index 0 is DC
HARMONIC_SIGNALS = 10                    # va vb vc vab vbc vca ia ib ic in (residual excluded)
A = np.exp(2j * math.pi / 3)
MIN_FUNDAMENTAL_PCT = 1.0                # THD, odd and even THD need H1 of at least this % of nominal


@dataclass
class HarmonicValues:
    mag: np.ndarray        # (10, 64) RMS harmonic subgroups, [.,0] = DC, [.,1] = fundamental
    inter: np.ndarray      # (10, 64) centred interharmonic subgroups; [.,h] lies between h and h+1
    angle: np.ndarray      # (10, 64) degrees relative to the VA fundamental
    fund: np.ndarray       # (10,) complex fundamental phasors (RMS)
    rms: np.ndarray        # (10,) RMS over the window
    thd: np.ndarray        # (10,) % HC/H1
    thd_rms: np.ndarray    # (10,) % HC/RMS
    thd_odd: np.ndarray    # (10,) %
    thd_even: np.ndarray   # (10,) %
    tdd: np.ndarray        # (10,) % HC/I_L (currents only; NaN for voltages)
    k_factor: np.ndarray   # (10,)
    crest: np.ndarray      # (10,)


def window_harmonics(y: np.ndarray, n_cycles: int, peak: np.ndarray, tdd_current: float,
                     h1_min: np.ndarray | None = None) -> HarmonicValues:
    """``y``: (n_cycles * 512, >=10) derived signals of one synchronous window; ``peak``: (10,) max |x|."""
    x = y[:, :HARMONIC_SIGNALS]
    spec = np.fft.rfft(x, axis=0)[: spectrum_lines(n_cycles)].T
    rms = np.sqrt(np.mean(x * x, axis=0))
    return spectrum_harmonics(spec, n_cycles, x.shape[0], rms, peak, tdd_current, h1_min)


def fundamental_floor(nominal_voltage: float, nominal_current: float) -> np.ndarray:
    """(10,) the least fundamental (RMS) a signal needs for its ratios over H1: ``MIN_FUNDAMENTAL_PCT`` of Udin
    for the six voltages, of In for the four currents."""
    floor = np.empty(HARMONIC_SIGNALS)
    floor[:6] = nominal_voltage * MIN_FUNDAMENTAL_PCT / 100.0
    floor[6:] = nominal_current * MIN_FUNDAMENTAL_PCT / 100.0
    return floor


def spectrum_lines(n_cycles: int) -> int:
    """DFT lines of an ``n_cycles`` window that the harmonic values use (up to order 64)."""
    return N_ORDERS * n_cycles


def spectrum_harmonics(spec: np.ndarray, n_cycles: int, length: int, rms: np.ndarray, peak: np.ndarray,
                       tdd_current: float, h1_min: np.ndarray | None = None) -> HarmonicValues:
    """Harmonic values from the DFT lines ``spec`` (10, >= spectrum_lines) of a ``length``-sample window.

    ``rms`` and ``peak`` (10,) are the window's RMS and max |x|, which the caller has from its cycles;
    ``h1_min`` (10,) the least fundamental of each signal for THD, odd and even THD (``fundamental_floor``;
    None: any fundamental above zero).
    """
    # |X|^2 of the harmonic subgroups (centre line and one on each side) and of the centred interharmonic
    # subgroups, each harmonic line's phase, and the ratios over them: one C pass (reference.harmonic_values)
    mag, inter, angle, fund, ratio = _kernels.harmonic_values(spec, n_cycles, N_ORDERS, length, rms[:HARMONIC_SIGNALS],
                                                              peak[:HARMONIC_SIGNALS], tdd_current, I_PH.start, h1_min)
    return harmonic_ratios(mag, inter, angle, fund, rms, ratio)


def harmonic_ratios(mag: np.ndarray, inter: np.ndarray, angle: np.ndarray, fund: np.ndarray, rms: np.ndarray,
                    ratio: np.ndarray) -> HarmonicValues:
    """``HarmonicValues`` from the harmonic_values kernel's results (``ratio`` (7, 10): THD, THD over RMS, odd and
    even THD, crest factor, K-factor, TDD)."""
    thd, thd_rms, thd_odd, thd_even, crest, k_factor, tdd = ratio
    return HarmonicValues(mag, inter, angle, fund, rms, thd, thd_rms, thd_odd, thd_even, tdd, k_factor, crest)




def sequence(a: complex | np.ndarray, b: complex | np.ndarray, c: complex | np.ndarray,
             phase_order: str = "ABC") -> np.ndarray:
    """(..., 3) complex zero, positive and negative sequence phasors."""
    if phase_order == "ACB":
        b, c = c, b
    a, b, c = np.asarray(a), np.asarray(b), np.asarray(c)
    return np.stack(((a + b + c) / 3, (a + A * b + A * A * c) / 3, (a + A * A * b + A * c) / 3), axis=-1)


def unbalance(seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u0, u2) in %: zero and negative sequence over positive sequence (IEC 61000-4-30 5.7.1)."""
    mag = np.abs(seq)
    with np.errstate(invalid="ignore", divide="ignore"):
        pos = np.where(mag[..., 1] > 0, mag[..., 1], np.nan)
        return 100 * mag[..., 0] / pos, 100 * mag[..., 2] / pos


def max_deviation_unbalance(rms: np.ndarray) -> np.ndarray:
    """100 * max |x - avg| / avg over the last axis (JEM "Unbalance", ANSI C84.1 form)."""
    avg = rms.mean(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(avg > 0, 100 * np.abs(rms - avg[..., None]).max(axis=-1) / avg, np.nan)
