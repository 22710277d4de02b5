"""The meter's own IIR design (metrology.iir) and capture resampling (firmware.recorder.polyphase) against
scipy.signal, which defines them and which the meter no longer imports at run time (docs/memory.md)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from firmware.recorder.polyphase import resample_poly
from metrology import iir
from metrology.flicker import weighting_analog

W = np.linspace(1e-4, np.pi - 1e-3, 500)     # rad/sample, DC to just below Nyquist


def _response(sos: np.ndarray) -> np.ndarray:
    return np.array([iir.sos_response(sos, w) for w in W])


@pytest.mark.parametrize("order, cutoff, fs, btype", [(6, 35.0, 1000.0, "lowpass"), (6, 42.0, 1000.0, "lowpass"),
                                                     (1, 0.05, 1000.0, "highpass"), (4, 150.0, 32000.0, "lowpass"),
                                                     (2, 10.0, 1000.0, "highpass")])
def test_butterworth_sections_have_scipys_response_and_steady_state(order, cutoff, fs, btype):
    ours = iir.butter_sos(order, cutoff, fs, btype)
    theirs = signal.butter(order, cutoff, btype, fs=fs, output="sos")
    h = signal.sosfreqz(theirs, W)[1]
    # double-precision design: relative agreement to 1e-11 where the response is not below 1e-12
    assert np.allclose(_response(ours), h, rtol=1e-11, atol=1e-12)
    assert ours.shape == theirs.shape
    x = np.full(200, 3.7)
    y, _ = signal.sosfilt(ours, x, zi=iir.sosfilt_zi(ours) * 3.7)
    assert np.allclose(y, x * np.prod(ours[:, :3].sum(1) / ours[:, 3:].sum(1)), rtol=1e-12)   # at rest: no transient
    assert np.allclose(iir.sosfilt_zi(theirs), signal.sosfilt_zi(theirs), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("lamp_v", [230, 120])
@pytest.mark.parametrize("fs", [1000.0, 1066.6666666666667])
def test_the_flicker_weighting_filter_is_scipys_bilinear_transform(lamp_v, fs):
    b, a = weighting_analog(lamp_v)
    theirs = signal.tf2sos(*signal.bilinear(b, a, fs=fs))
    # scipy's bilinear goes through polynomial coefficients, ours through zeros and poles: 1e-8 between them
    assert np.allclose(_response(iir.bilinear_sos(b, a, fs)), signal.sosfreqz(theirs, W)[1], rtol=1e-8)


def test_first_order_section_is_lfilter():
    rng = np.random.default_rng(5)
    x = rng.normal(size=300)
    y, _ = signal.sosfilt(iir.first_order_sos(0.02, -0.98), x, zi=np.array([[0.4, 0.0]]))
    expected, _ = signal.lfilter([0.02], [1.0, -0.98], x, zi=[0.4])
    assert np.allclose(y, expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("n, up, down", [(7466, 7680, 32000), (7466, 15360, 32000), (1000, 3, 2), (333, 5, 7),
                                         (5000, 1, 4), (64, 1, 1)])
def test_capture_resampling_is_scipys_resample_poly(n, up, down):
    x = np.random.default_rng(n).normal(size=(n, 7)) * 325.0
    ours, theirs = resample_poly(x, up, down), signal.resample_poly(x, up, down, axis=0)
    assert ours.shape == theirs.shape
    assert np.allclose(ours, theirs, rtol=0, atol=1e-9)     # the same taps summed in another order (325 V peak)
