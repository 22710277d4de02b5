"""ADC model of the simulated ADE9000: terminal quantities in, 24-bit codes out.

Usable on its own, without the SPI path: ``quantise(physical, channels)`` turns float64 samples
(n, 7) in V and A at the meter's input terminals into the int32 codes the chip would put in its
waveform buffer (24-bit two's complement, before the ``<< 4`` of the buffer word).

Modelled per channel: sensor scaling (divider, CT + burden, Rogowski at its nominal sensitivity),
PGA gain (1, 2, 4), full scale (+-1 V peak at the pins, ``SINC4_FULL_SCALE_CODES``), clipping at the
24-bit limits, gain error, offset (codes) and phase error (a time lag, applied when sampling a
source so that it is a true phase shift at every frequency a calibration would see).

Noise floor: the data sheet gives 101 dB SNR (full-scale sine to noise). We take that figure over
the 8 kSPS output band (~4 kHz) and, for the 32 kSPS sinc4 output (~16 kHz of noise bandwidth),
widen it by sqrt(16/4) = 2 in amplitude: noise rms = FS_rms * 10^(-101/20) * 2, about 53 codes.
That is an assumption stated here, not a datasheet number for the sinc4 output.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hal.board import SAMPLE_FULL_SCALE_CODES, ChannelParams
from hal.regmap import regmap

CODE_MAX = (1 << 23) - 1
CODE_MIN = -(1 << 23)
SNR_DB = float(regmap().const("ADC_SNR_DB"))
NOISE_BANDWIDTH_FACTOR = 2.0     # sqrt(16 kHz / 4 kHz), see module docstring
NOISE_RMS_CODES = SAMPLE_FULL_SCALE_CODES / np.sqrt(2) * 10 ** (-SNR_DB / 20) * NOISE_BANDWIDTH_FACTOR


def codes_per_unit(channels: Sequence[ChannelParams], with_errors: bool = True) -> np.ndarray:
    """24-bit codes per terminal V or A for each channel (gain error included unless told otherwise)."""
    out = np.empty(len(channels))
    for k, ch in enumerate(channels):
        gain = 1.0 + (ch.sim_gain_error if with_errors else 0.0)
        out[k] = SAMPLE_FULL_SCALE_CODES * ch.pga_gain * ch.pin_volts_per_unit() * gain
    return out


def quantise(physical: np.ndarray, channels: Sequence[ChannelParams], noise: bool = False,
             rng: np.random.Generator | None = None) -> np.ndarray:
    """Terminal samples (n, len(channels)) -> int32 24-bit codes, rounded, offset, clipped.

    Phase errors are not applied here (they need the signal at other instants); sample the source at
    ``t - lags_s(channels, f)`` for that, as the simulated chip does.
    """
    x = np.asarray(physical, dtype=np.float64)
    codes = x * codes_per_unit(channels) + np.array([ch.sim_offset_codes for ch in channels])
    if noise:
        rng = rng if rng is not None else np.random.default_rng(0)
        codes = codes + rng.normal(0.0, NOISE_RMS_CODES, size=codes.shape)
    return np.clip(np.rint(codes), CODE_MIN, CODE_MAX).astype(np.int32)


def lags_s(channels: Sequence[ChannelParams], nominal_hz: float) -> np.ndarray:
    """Time lag per channel that realises its simulated phase error at the nominal frequency."""
    return np.array([ch.sim_phase_error_deg / 360.0 / nominal_hz for ch in channels])


def to_physical(codes: np.ndarray, channels: Sequence[ChannelParams]) -> np.ndarray:
    """Codes back to terminal units with the board's (calibrated) scale, as metrology would."""
    return np.asarray(codes, dtype=np.float64) * np.array([ch.scale() for ch in channels])
