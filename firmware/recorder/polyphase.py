"""Rational resampling of captures (up / down) with a Kaiser-windowed low-pass, in numpy: what
``scipy.signal.resample_poly(x, up, down, axis=0)`` computes with its default window, sample for sample
(tests/unit/test_recorder_polyphase.py compares them).

Not scipy.signal at run time: importing it imports scipy.linalg, scipy.optimize and scipy.stats, some 47 MB of
memory in the meter (docs/memory.md), for a capture every now and then.
"""
from __future__ import annotations

import math

import numpy as np

KAISER_BETA = 5.0          # scipy.signal.resample_poly's default window ("kaiser", 5.0)
HALF_LEN_PER_RATE = 10     # its filter has 10 taps per phase on each side


def lowpass_taps(up: int, down: int) -> np.ndarray:
    """The anti-aliasing filter, cutoff at the lower Nyquist of the two rates, gain ``up`` at DC."""
    max_rate = max(up, down)
    half_len = HALF_LEN_PER_RATE * max_rate
    m = np.arange(2 * half_len + 1) - half_len
    h = np.sinc(m / max_rate) / max_rate * np.kaiser(2 * half_len + 1, KAISER_BETA)
    return h / h.sum() * up


def _output_len(taps: int, n_in: int, up: int, down: int) -> int:
    return ((n_in - 1) * up + taps - 1) // down + 1


def resample_poly(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """``x`` (n, ...) resampled along axis 0 by ``up / down``: ceil(n up / down) rows, the signal outside
    ``x`` taken as zero."""
    g = math.gcd(up, down)
    up, down = up // g, down // g
    x = np.asarray(x, dtype=np.float64)
    if up == down == 1:
        return x.copy()
    n_in = x.shape[0]
    n_out = -(-n_in * up // down)
    h = lowpass_taps(up, down)
    half_len = (h.size - 1) // 2
    # align the filter's centre on the first output sample, and make the output long enough to trim
    pre = down - half_len % down
    post = 0
    while _output_len(h.size + pre + post, n_in, up, down) < n_out + (half_len + pre) // down:
        post += 1
    h = np.concatenate([np.zeros(pre), h, np.zeros(post)])
    first = (half_len + pre) // down
    stuffed = np.zeros(((n_in - 1) * up + 1,) + x.shape[1:])
    stuffed[::up] = x
    flat = stuffed.reshape(stuffed.shape[0], -1)
    out = np.empty((n_out, flat.shape[1]))
    for c in range(flat.shape[1]):
        out[:, c] = np.convolve(flat[:, c], h)[::down][first:first + n_out]
    return out.reshape((n_out,) + x.shape[1:])
