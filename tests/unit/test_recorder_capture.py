"""The recorder's sample history across lost frames, and the resampler that keeps a gap missing."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from firmware.recorder.capture import SampleHistory, resample_with_gaps

FS = 32000.0


def block(first: int, n: int) -> np.ndarray:
    t = (first + np.arange(n)) / FS
    return np.repeat((325.0 * np.cos(2 * np.pi * 50 * t))[:, None], 7, axis=1)


def test_lost_frames_are_held_as_missing_between_the_samples_either_side():
    h = SampleHistory(1.0, FS)
    h.add(0, block(0, 1024))
    h.add(2048, block(2048, 1024))          # frames 1024..2047 lost
    assert (h.start, h.end, h.missing, h.restarts) == (0, 3072, 1024, 0)
    w = h.window(0, 3072)
    assert np.isnan(w[1024:2048]).all() and np.allclose(w[:1024], block(0, 1024), atol=1e-3)
    assert np.allclose(w[2048:], block(2048, 1024), atol=1e-3)
    assert np.isnan(h.window(1100, 1200)).all()     # only missing frames there: held as missing
    assert h.window(3072, 4000) is None              # not reached yet


def test_a_count_that_goes_back_or_a_gap_longer_than_the_history_starts_it_over():
    h = SampleHistory(0.1, FS)              # 3,200 frames
    h.add(0, block(0, 1024))
    h.add(10_000, block(10_000, 1024))
    assert (h.start, h.restarts, h.missing) == (10_000, 1, 0)
    h.add(0, block(0, 512))                 # acquisition restarted
    assert (h.start, h.end, h.restarts) == (0, 512, 2)


def test_the_history_wraps_with_a_gap_across_its_end():
    h = SampleHistory(0.1, FS)              # 3,200 frames
    h.add(0, block(0, 3000))
    h.add(3100, block(3100, 1000))          # lost 3000..3099, wrapping the buffer
    assert (h.start, h.end) == (900, 4100)
    w = h.window(2900, 4100)
    assert np.isnan(w[100:200]).all() and not np.isnan(w[:100]).any() and not np.isnan(w[200:]).any()


@pytest.mark.parametrize("up,down", [(4, 5), (1, 1), (2, 5)])
def test_resampling_around_a_gap_marks_its_reach_missing_and_leaves_the_rest_as_without_it(up, down):
    x = block(0, 6400)[:, :2]
    y_full = resample_poly(x, up, down, axis=0)
    # the recorder's own polyphase filter is scipy's, summed in another order: equal to rounding (325 V peak)
    assert np.allclose(resample_with_gaps(x, up, down), y_full, rtol=0, atol=1e-9)
    gapped = x.copy()
    gapped[3000:3100] = np.nan
    y = resample_with_gaps(gapped, up, down)
    assert y.shape == y_full.shape
    gone = np.flatnonzero(np.isnan(y[:, 0]))
    lo, hi = 3000 * up / down, 3100 * up / down
    assert gone[0] <= lo and gone[-1] >= hi - 1 and np.all(np.diff(gone) == 1)
    assert gone[0] >= lo - 15 * up and gone[-1] <= hi + 15 * up      # no more than the filter's reach
    ok = ~np.isnan(y[:, 0])
    assert np.abs(y[ok] - y_full[ok]).max() < 1e-3 * 325             # outside the reach: as without the gap
