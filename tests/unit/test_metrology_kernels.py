"""Each C kernel agrees with its numpy reference (metrology/_kernels/reference.py)."""
import numpy as np
import pytest

from metrology import _kernels
from metrology._kernels import reference

pytestmark = pytest.mark.skipif(_kernels.BACKEND != "c", reason="C kernels not built: " + _kernels.BACKEND_NOTE)


def test_resample_cycles_agrees_including_edges_and_per_channel_delays():
    rng = np.random.default_rng(9)
    buf = rng.normal(size=(3000, 7))
    inside = 1000.0 + np.cumsum(rng.uniform(480, 560, 4))         # three cycles of 45..67 Hz
    beyond = np.array([-4.0, 1500.0, 3003.0])                     # taps past both ends: clamped
    for bounds in (inside, beyond):
        for delays in (np.zeros(7), np.array([0.3, 0, -1.7, 0, 2.2, 0, 0.05])):
            want = reference.resample_cycles(buf, bounds, 512, 17, delays)
            got = _kernels.c_resample_cycles(buf, bounds, 512, 17, delays)
            assert got.shape == (bounds.size - 1, 512, 7)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_cycle_stats_agrees_for_every_wiring():
    from metrology.settings import SYSTEM_TYPES
    from metrology.systems import wiring

    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 512, 7)) * 300
    matrices = [wiring(t).matrix for t in SYSTEM_TYPES] + [rng.normal(size=(7, 11))]   # and a dense one
    for matrix in matrices:
        for a, b in zip(_kernels.c_cycle_stats(x, matrix, 0, 6, 3), reference.cycle_stats(x, matrix, 0, 6, 3)):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-8)


def test_sosfilt_agrees_across_blocks():
    from metrology.frequency import reference_filter

    sos = reference_filter(32000.0)
    rng = np.random.default_rng(5)
    x = rng.normal(size=10000)
    zi_c = zi_r = np.zeros((sos.shape[0], 2))
    for lo in range(0, x.size, 999):
        yc, zi_c = _kernels.c_sosfilt(sos, x[lo:lo + 999], zi_c)
        yr, zi_r = reference.sosfilt(sos, x[lo:lo + 999], zi_r)
        np.testing.assert_allclose(yc, yr, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(zi_c, zi_r, rtol=1e-10, atol=1e-12)


def test_sosfilt_of_weighted_inputs_agrees():
    from metrology.frequency import reference_filter
    from metrology.systems import wiring

    sos = reference_filter(32000.0)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(5000, 7)) * 300
    for weights in (wiring("4W-WYE").reference, wiring("DELTA").reference * 100, rng.normal(size=7)):
        zi_c = zi_r = np.zeros((sos.shape[0], 2))
        for lo in range(0, x.shape[0], 1024):
            yc, zi_c = _kernels.c_sosfilt(sos, x[lo:lo + 1024], zi_c, weights)
            yr, zi_r = reference.sosfilt(sos, x[lo:lo + 1024], zi_r, weights)
            np.testing.assert_allclose(yc, yr, rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(zi_c, zi_r, rtol=1e-10, atol=1e-9)


def test_rising_crossings_agree():
    rng = np.random.default_rng(8)
    t = np.arange(20000) / 32000.0
    y = 300 * np.sin(2 * np.pi * 57.3 * t + 0.4) + rng.normal(0, 20, t.size)    # noisy: many crossings
    for lo, half in ((0, 250), (1, 0), (777, 279), (19990, 300)):
        got, want = _kernels.c_rising_crossings(y, lo, half), reference.rising_crossings(y, lo, half)
        assert got[0] == want[0] and len(got[0]) > (10 if lo < 1000 else -1)
        np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-15)
        np.testing.assert_array_equal(got[2], want[2])


def test_harmonic_groups_agrees_for_every_window_length():
    rng = np.random.default_rng(6)
    for n in (1, 2, 3, 4, 10, 12):
        lines = (rng.normal(size=(10, 64 * n + 2)) + 1j * rng.normal(size=(10, 64 * n + 2))) * 1e3
        for a, b in zip(_kernels.c_harmonic_groups(lines, n, 64), reference.harmonic_groups(lines, n, 64)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9)


def test_kernels_reject_wrong_dtypes():
    with pytest.raises(TypeError):
        _kernels._ckernels.resample_cycles(np.zeros((10, 2), np.float32), np.zeros(2), np.zeros(2),
                                           np.zeros((4, 2)), 10, 2, 1, 4, 0.0)
    with pytest.raises(ValueError):
        _kernels._ckernels.resample_cycles(np.zeros((10, 2)), np.zeros(2), np.zeros(2), np.zeros((3, 2)),
                                           10, 2, 1, 4, 0.0)
