"""Mains signalling voltage (IEC 61000-4-30:2015 5.10) at the configured ripple-control frequencies, and the
EN 50160 limit for it.

The basic value is the r.m.s. voltage at the signalling frequency over the 10/12-cycle window, taken from the
window's DFT lines, which are the 5-Hz interharmonic bins of IEC 61000-4-7 (the window is N whole cycles, so
line k lies at k * f1 / N): Class A takes the bin itself when the frequency is a bin centre (175 Hz: the 175-Hz
bin), else the four nearest bins, combined as the root of the sum of their squares (316.67 Hz on a 50-Hz system:
the 310, 315, 320 and 325 Hz bins; IEC 61000-4-30:2015 5.10.1). The bins are chosen at the nominal frequency,
once, so they follow the supply's frequency as the window does. The 150/180-cycle (3 s) values are the r.m.s. of
the window values (5.10.1: 3-s values, Class A); the 10-min and 2-h values aggregate the same way.

The rectangular window spreads a tone between bin centres over more lines than four: the four keep 92.5 % of the
power of one a third of a bin off centre (-3.8 % in amplitude), the reason the standard's uncertainty for this
quantity is ±5 % of the reading (5.10.2).

EN 50160:2010 4.2.5 (Figure 1, the "Meister curve") bounds the 3-s mean signal voltage in LV networks during
99 % of a day: 9 % of Un from 100 to 500 Hz, falling in proportion to 1/f (a straight line on the standard's
log-log plot) to 5 % at 1 kHz, 5 % from 1 to 10 kHz.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

MSV_MIN_HZ = 100.0             # EN 50160:2010 Figure 1 starts at 0.1 kHz
MSV_MAX_HZ = 3000.0            # the window's DFT keeps lines up to order 64 (3.2 kHz at 50 Hz): room for 4 bins
MAX_FREQUENCIES = 4
BIN_CENTRE_TOL = 1e-3          # a frequency within a thousandth of a bin of a bin centre is that bin
BINS_OFF_CENTRE = 4            # IEC 61000-4-30:2015 5.10.1: the four nearest bins
# EN 50160:2010 Figure 1 (LV): (frequency Hz, limit % of Un) corners, log-log interpolation between them
MEISTER_CURVE = ((100.0, 9.0), (500.0, 9.0), (1000.0, 5.0), (10000.0, 5.0))
MEISTER_DAY_PCT = 99.0         # EN 50160:2010 4.2.5: 3-s means within the curve during 99 % of a day


def check_frequencies(freqs_hz: tuple[float, ...]) -> None:
    """``ValueError`` naming what is wrong with a list of signalling frequencies."""
    if len(freqs_hz) > MAX_FREQUENCIES:
        raise ValueError(f"{len(freqs_hz)} signalling frequencies; at most {MAX_FREQUENCIES}")
    for f in freqs_hz:
        if not MSV_MIN_HZ <= f <= MSV_MAX_HZ:
            raise ValueError(f"signalling frequency {f:g} Hz is outside {MSV_MIN_HZ:g}..{MSV_MAX_HZ:g} Hz")
    if len({round(f, 2) for f in freqs_hz}) != len(freqs_hz):
        raise ValueError("a signalling frequency is listed twice; list each once")


@lru_cache(maxsize=32)
def bins(freqs_hz: tuple[float, ...], nominal_hz: float, n_cycles: int) -> tuple[np.ndarray, np.ndarray]:
    """(k, 4) DFT line indices of each frequency in an ``n_cycles`` window and (k, 4) which of them count: the
    bin itself at a bin centre (one), else the four nearest (IEC 61000-4-30:2015 5.10.1)."""
    spacing_hz = nominal_hz / n_cycles
    idx = np.zeros((len(freqs_hz), BINS_OFF_CENTRE), dtype=np.intp)
    use = np.zeros((len(freqs_hz), BINS_OFF_CENTRE), dtype=bool)
    for j, f in enumerate(freqs_hz):
        p = f / spacing_hz
        if abs(p - round(p)) < BIN_CENTRE_TOL:
            idx[j, 0], use[j, 0] = round(p), True
        else:
            idx[j] = math.floor(p) + np.arange(-1, BINS_OFF_CENTRE - 1)
            use[j] = True
    return idx, use


def window_values(spec: np.ndarray, length: int, idx: np.ndarray, use: np.ndarray) -> np.ndarray:
    """(m, k) signalling voltage, V r.m.s., of the ``m`` signals whose DFT lines of a ``length``-sample window are
    ``spec`` (m, lines), at the ``k`` frequencies of ``bins``."""
    power = spec[:, idx].real ** 2 + spec[:, idx].imag ** 2           # (m, k, 4) |X|²
    return np.sqrt((power * use).sum(axis=2) * (2.0 / (length * length)))


def meister_limit_pct(f_hz: float) -> float:
    """EN 50160:2010 Figure 1: the LV limit of the 3-s signal voltage at ``f_hz``, % of Un."""
    corners = MEISTER_CURVE
    if f_hz <= corners[0][0]:
        return corners[0][1]
    for (f0, v0), (f1, v1) in zip(corners, corners[1:]):
        if f_hz <= f1:
            t = math.log(f_hz / f0) / math.log(f1 / f0)
            return math.exp(math.log(v0) + t * (math.log(v1) - math.log(v0)))
    return corners[-1][1]
