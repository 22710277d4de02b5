"""Design of the pipeline's IIR filters as second-order sections, in numpy: Butterworth low- and high-pass, the
bilinear transform of an analog filter, sections from zeros and poles, their frequency response and the
initial state of a filter in steady state. What ``scipy.signal``'s ``butter``, ``bilinear``, ``tf2sos``,
``sosfreqz`` and ``sosfilt_zi`` compute (tests/unit/test_metrology_iir.py compares them); the sections are
run by ``metrology._kernels.sosfilt``.

Not scipy.signal at run time: importing it imports scipy.linalg, scipy.optimize and scipy.stats, some 47 MB of
memory in the meter for designs made once at start (docs/memory.md). scipy stays the definition in the tests.
"""
from __future__ import annotations

import numpy as np

# scipy.signal.iirfilter designs on frequencies normalised to a sample rate of 2 (1 = Nyquist)
_NORMALISED_FS = 2.0


def butter_sos(order: int, cutoff_hz: float, fs: float, btype: str = "lowpass") -> np.ndarray:
    """Digital Butterworth low- or high-pass of ``order`` with its -3 dB point at ``cutoff_hz``: sections
    (n, 6) as ``scipy.signal.butter(order, cutoff_hz, btype, fs=fs, output="sos")`` gives them."""
    if btype not in ("lowpass", "highpass"):
        raise ValueError(f"butter_sos: btype must be lowpass or highpass, got {btype!r}")
    if not 0.0 < cutoff_hz < fs / 2.0:
        raise ValueError(f"butter_sos: the cutoff {cutoff_hz} Hz must lie between 0 and fs/2 = {fs / 2.0} Hz")
    # analog prototype (cutoff 1 rad/s): poles evenly on the left half of the unit circle
    proto = -np.exp(1j * np.pi * np.arange(-order + 1, order, 2) / (2 * order))
    wn = 2.0 * cutoff_hz / fs
    warped = 2.0 * _NORMALISED_FS * np.tan(np.pi * wn / _NORMALISED_FS)     # pre-warped for the bilinear map
    if btype == "lowpass":
        z, p, k = np.zeros(0), warped * proto, warped ** order
    else:
        z, p, k = np.zeros(order), warped / proto, float(np.real(1.0 / np.prod(-proto)))
    return zpk2sos(*bilinear_zpk(z, p, k, _NORMALISED_FS))


def bilinear_zpk(z: np.ndarray, p: np.ndarray, k: float, fs: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Zeros, poles and gain of the analog filter (z, p, k) mapped to the z-plane by the bilinear transform at
    ``fs``; zeros at infinity go to Nyquist (z = -1)."""
    z, p = np.asarray(z, dtype=complex), np.asarray(p, dtype=complex)
    fs2 = 2.0 * fs
    zd = np.append((fs2 + z) / (fs2 - z), -np.ones(len(p) - len(z)))
    pd = (fs2 + p) / (fs2 - p)
    kd = float(k * np.real(np.prod(fs2 - z) / np.prod(fs2 - p)))
    return zd, pd, kd


def bilinear_sos(b: np.ndarray, a: np.ndarray, fs: float) -> np.ndarray:
    """The analog filter b(s)/a(s) (highest power first) by the bilinear transform at ``fs``, as sections: the
    filter ``scipy.signal.tf2sos(*scipy.signal.bilinear(b, a, fs))`` is."""
    b, a = np.trim_zeros(np.atleast_1d(b), "f"), np.trim_zeros(np.atleast_1d(a), "f")
    return zpk2sos(*bilinear_zpk(np.roots(b), np.roots(a), float(b[0] / a[0]), fs))


def _pairs(roots: np.ndarray) -> list[np.ndarray]:
    """Conjugate pairs, then the real roots two by two (the last alone, with a root at the origin)."""
    roots = np.asarray(roots, dtype=complex)
    upper = sorted((r for r in roots if r.imag > 1e-12 * max(1.0, abs(r))), key=abs)
    real = sorted((r.real for r in roots if abs(r.imag) <= 1e-12 * max(1.0, abs(r))), key=abs)
    pairs = [np.array([r, np.conj(r)]) for r in upper]
    if len(real) % 2:
        real.append(0.0)
    pairs += [np.array(real[i:i + 2], dtype=complex) for i in range(0, len(real), 2)]
    return pairs


def zpk2sos(z: np.ndarray, p: np.ndarray, k: float) -> np.ndarray:
    """Second-order sections of the digital filter (z, p, k): the poles in conjugate (or real) pairs, sections
    ordered by the pole nearest the unit circle, last; each pole pair takes the zero pair nearest to it; the
    gain goes to the first section. Fewer zeros than poles are zeros at the origin, and the other way round."""
    z, p = np.asarray(z, dtype=complex), np.asarray(p, dtype=complex)
    n = max(len(z), len(p))
    z = np.append(z, np.zeros(n - len(z)))
    p = np.append(p, np.zeros(n - len(p)))
    pole_pairs = sorted(_pairs(p), key=lambda pair: float(np.max(np.abs(pair))))
    zero_pairs = _pairs(z)
    sos = np.zeros((len(pole_pairs), 6))
    # the poles nearest the unit circle choose their zeros first
    for i in range(len(pole_pairs) - 1, -1, -1):
        poles = pole_pairs[i]
        j = min(range(len(zero_pairs)), key=lambda m: float(np.min(np.abs(zero_pairs[m][:, None] - poles[None, :]))))
        zeros = zero_pairs.pop(j)
        sos[i, :3] = np.real(np.poly(zeros))
        sos[i, 3:] = np.real(np.poly(poles))
    sos[0, :3] *= k
    return sos


def sos_response(sos: np.ndarray, w: float) -> complex:
    """The sections' complex gain at ``w`` radians per sample (``scipy.signal.sosfreqz(sos, [w])``)."""
    e = np.exp(-1j * w * np.arange(3))
    return complex(np.prod((sos[:, :3] @ e) / (sos[:, 3:] @ e)))


def sosfilt_zi(sos: np.ndarray) -> np.ndarray:
    """State (n, 2) of the sections in steady state for a unit step (``scipy.signal.sosfilt_zi``): scaled by a
    constant input, the filter starts as if that input had always been there."""
    zi = np.zeros((sos.shape[0], 2))
    scale = 1.0
    for i, (b, a) in enumerate(zip(sos[:, :3], sos[:, 3:])):
        b, a = b / a[0], a / a[0]
        # transposed direct form II at rest under a constant input: (I - A^T) zi = b[1:] - a[1:] b[0]
        system = np.array([[1.0 + a[1], -1.0], [a[2], 1.0]])
        zi[i] = scale * np.linalg.solve(system, b[1:] - a[1:] * b[0])
        scale *= b.sum() / a.sum()
    return zi


def first_order_sos(b0: float, a1: float) -> np.ndarray:
    """y[n] = b0 x[n] - a1 y[n-1] as one section (``scipy.signal.lfilter([b0], [1, a1])``)."""
    return np.array([[b0, 0.0, 0.0, 1.0, a1, 0.0]])
