"""Each C kernel agrees with its numpy reference (metrology/_kernels/reference.py)."""
import numpy as np
import pytest

from metrology import _kernels
from metrology._kernels import reference
from tests.support.kernels import cycle_change_of

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
    x[2, 40, 3] = np.nan                  # a cycle with a NaN input: the reference's sums, NaN where it reaches
    # the system types' matrices, with PT/CT ratios and an inverted input (the kernel has a copy of its loop for
    # the terms of some of them), one with an input of no weight (not a system type's terms), and a dense one
    gain = np.array([200.0, 100.0, 200.0, 100.0, -200.0, 100.0, 50.0])
    no_neutral = wiring("4W-WYE").matrix.copy()
    no_neutral[6] = 0.0
    matrices = [wiring(t).matrix for t in SYSTEM_TYPES] + [gain[:, None] * wiring(t).matrix for t in SYSTEM_TYPES]
    for matrix in matrices + [no_neutral, rng.normal(size=(7, 11))]:
        for a, b in zip(_kernels.c_cycle_stats(x, matrix, 0, 6, 3), reference.cycle_stats(x, matrix, 0, 6, 3)):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-8)


@pytest.mark.parametrize("c, k, v0, i0, nvi, s", [
    (7, 11, 0, 6, 3, 512),      # the board: seven inputs, the products' voltages in the first four signals
    (7, 11, 3, 6, 3, 512),      # the voltages elsewhere: a group of their own
    (7, 11, 0, 4, 3, 512),      # the currents elsewhere: terms of their own, not the lanes of signals 6..9
    (7, 10, 0, 6, 4, 512),      # four products, the fourth current the last signal
    (5, 12, 4, 8, 4, 64),       # another input count, twelve signals, short cycles
    (9, 11, 0, 6, 3, 512),      # more inputs than a vector pair holds
    (7, 14, 2, 9, 5, 510),      # more signals and products than the register form takes, odd half length
    (3, 4, 0, 2, 2, 512),       # fewer inputs than a vector
])
def test_cycle_stats_agrees_for_any_shape(c, k, v0, i0, nvi, s):
    rng = np.random.default_rng(c * 100 + k)
    x = rng.normal(size=(4, s, c)) * 300
    matrix = np.where(rng.uniform(size=(c, k)) < 0.4, rng.normal(size=(c, k)), 0.0)
    for a, b in zip(_kernels.c_cycle_stats(x, matrix, v0, i0, nvi), reference.cycle_stats(x, matrix, v0, i0, nvi)):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-8)


@pytest.mark.parametrize("c", [3, 4, 7, 8, 9])
def test_resample_cycles_agrees_for_any_input_count(c):
    rng = np.random.default_rng(c)
    buf = rng.normal(size=(2000, c))
    bounds = np.array([-3.0, 530.0, 1061.5, 1999.0])               # clamped taps at both ends
    # one delay; delays within a sample of each other (a calibrated board: first taps on one row or two); far apart
    for delays in (np.zeros(c), np.full(c, 0.4), rng.uniform(-0.3, 0.3, c), rng.uniform(-2, 2, c)):
        want = reference.resample_cycles(buf, bounds, 512, 5, delays)
        np.testing.assert_allclose(_kernels.c_resample_cycles(buf, bounds, 512, 5, delays), want,
                                   rtol=1e-12, atol=1e-12)


def _log_columns(cap: int) -> list[np.ndarray]:
    from metrology.cycle import CycleLog

    log = CycleLog(cap)
    for col in log.columns:
        col.fill(-7)            # rows the kernel must not write keep this
    return log.columns


@pytest.mark.parametrize("delays", [np.zeros(7), np.array([0.18, -0.07, 0.3, 0.04, -0.15, 0.1, 0.22]),
                                    np.array([0.3, 0, -1.7, 0, 2.2, 0, 0.05])])
def test_cycle_batch_agrees_with_resample_cycles_and_cycle_stats_into_the_log_rows(delays):
    from metrology.systems import wiring

    rng = np.random.default_rng(11)
    buf = rng.normal(size=(5000, 7)) * 300
    buf[2500, 2] = np.nan
    # cycles of 60 Hz, one of 40 Hz and one of 75 Hz (no frequency), one boundary not a measured crossing
    bounds = 20.0 + np.cumsum([0.0, 533.3, 533.4, 800.0, 426.7, 533.2, 533.3, 533.3]) + rng.uniform(0, 1, 8)
    real = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    matrix = np.array([200.0, 100.0, 200.0, 100.0, -200.0, 100.0, 50.0])[:, None] * wiring("4W-WYE").matrix
    m = bounds.size - 1
    got_x, want_x = np.empty((m, 512, 7)), np.empty((m, 512, 7))
    got, want = _log_columns(12), _log_columns(12)
    args = (buf, bounds, real, 512, 3.0, delays, matrix, 0, 6, 3, 32000.0, 42.5, 69.0)
    _kernels.c_cycle_batch(*args, got_x, got, 3)
    with np.errstate(invalid="ignore"):
        reference.cycle_batch(*args, want_x, want, 3)
    np.testing.assert_allclose(got_x, want_x, rtol=1e-12, atol=1e-12)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-8)
        assert (a[:3] == a.dtype.type(-7)).all() and (a[3 + m:] == a.dtype.type(-7)).all()   # the rows around
    np.testing.assert_array_equal(got[0][3:3 + m], bounds[:-1])
    np.testing.assert_array_equal(got[4][3:3 + m], [True, True, True, True, True, False, False])
    assert np.isnan(got[3][3:3 + m]).tolist() == [False, False, True, True, False, True, True]
    # the same cycles as the separate kernels give them
    np.testing.assert_array_equal(got_x, _kernels.c_resample_cycles(buf, bounds, 512, 3.0, delays))
    for col, b in zip((got[5], got[6], got[9], got[7], got[8]), _kernels.c_cycle_stats(got_x, matrix, 0, 6, 3)):
        np.testing.assert_array_equal(col[3:3 + m], b)


@pytest.mark.parametrize("cycles", range(1, 13))
def test_window_rfft_agrees_for_every_window_length(cycles):
    """512 samples a cycle: 1 to 12 cycles (10/12 and the windows cut short at the 10-min tick); the lengths with a
    factor 7 or 11 take numpy's rfft. Columns in whole groups of four and not, all of them or the first few."""
    rng = np.random.default_rng(cycles)
    for width, cols in ((1, 1), (3, 3), (4, 4), (8, 7), (9, 9), (8, 5), (7, 4), (12, 9)):
        x = rng.normal(size=(512 * cycles, width)) * 300 + 5.0
        for nl in (64 * cycles, 256 * cycles + 1, 1):
            want = reference.window_rfft(x, nl, cols)
            got = _kernels.c_window_rfft(x, nl, cols)
            assert got.shape == want.shape == (cols, nl)
            # another FFT's order of operations: rounding of about log2(N) ulps of the largest line, not more
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-13 * np.abs(want).max())


@pytest.mark.parametrize("cycles", [10, 12, 5])
def test_window_rfft_gives_the_same_lines_at_eight_columns_a_vector_as_at_four(cycles):
    """Where the CPU has AVX-512 the window's eight columns share a vector; the butterflies are the same, lane by lane,
    so the lines are the same to the bit as those of two groups of four (the only form elsewhere)."""
    rng = np.random.default_rng(cycles)
    x = rng.normal(size=(512 * cycles, 8)) * 300
    x[:, 7] = 0.0
    for cols in (7, 8, 5):
        wide, narrow = (np.empty((cols, 64 * cycles), dtype=np.complex128) for _ in range(2))
        assert _kernels._ckernels.window_rfft(x, wide.view(np.float64), cols, x.shape[0], 8, 64 * cycles)
        assert _kernels._ckernels.window_rfft(x, narrow.view(np.float64), cols, x.shape[0], 8, 64 * cycles, False)
        np.testing.assert_array_equal(wide, narrow)


def test_window_rfft_columns_past_the_inputs_do_not_reach_their_lines():
    """The window's padding columns (zero in the pipeline) are transformed in lanes of their own: NaN or infinite
    there changes no input's lines."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(512 * 12, 8)) * 300
    want = _kernels.c_window_rfft(x, 768, 7)
    x[:, 7] = np.nan
    x[5, 7] = np.inf
    np.testing.assert_array_equal(_kernels.c_window_rfft(x, 768, 7), want)
    np.testing.assert_array_equal(_kernels.c_window_rfft(x[:, :7].copy(), 768, 7), want)


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


def test_the_line_phases_are_libms_atan2_within_two_units_in_the_last_place_and_exact_at_its_special_values():
    # the kernels take a row's phases four lanes at a time (vmath.c); harmonic_groups with one line per order gives
    # them as they are. Every magnitude from 1e-300 to 1e300, ratios near the reduction's bounds (0.66, tan(3pi/8)),
    # subnormals, and the zeros, infinities and NaN that libm's atan2 (math.atan2) defines.
    import math
    rng = np.random.default_rng(27)
    n = 20000
    ratio = np.concatenate([rng.uniform(0.0, 3.0, n), 0.66 + rng.uniform(-1e-9, 1e-9, n),
                            2.414213562373095 + rng.uniform(-1e-9, 1e-9, n)])
    # near the largest double, ratios of the middle branch, where |y| + |x| would overflow
    big = 10.0 ** rng.uniform(305.0, np.log10(8e307), n) * rng.choice([-1.0, 1.0], n)
    big_y = np.abs(big) * rng.uniform(0.66, 2.2, n) * rng.choice([-1.0, 1.0], n)
    z = np.concatenate([10.0 ** rng.uniform(-300, 300, n) * np.exp(1j * rng.uniform(-np.pi, np.pi, n)),
                        (1 + 1j * ratio) * rng.choice([-1.0, 1.0], ratio.size) * 10.0 ** rng.integers(-300, 300, ratio.size),
                        (rng.normal(size=n) + 1j * rng.normal(size=n)) * 5e-324 * rng.integers(1, 2 ** 20, n),
                        big + 1j * big_y,
                        np.array([1e308 + 1.5e308j, -1e308 + 1.7e308j, 1.7976931348623157e308 + 1.7e308j])])
    special = (0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.nan, 5e-324, -5e-324, 1e308, -1e308)
    pairs = [(a, b) for a in special for b in special]
    z = np.concatenate([z, np.array([complex(a, 0.0) for a, _ in pairs])])
    z.imag[-len(pairs):] = [b for _, b in pairs]
    _, _, got = _kernels.c_harmonic_groups(z.reshape(1, -1), 1, z.size)
    want = np.array([math.atan2(v.imag, v.real) for v in z])
    got = got[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = ~np.isnan(want)
    assert (np.abs(got - want)[finite] <= 2 * np.spacing(np.abs(want[finite]))).all()
    tail = slice(-len(pairs), None)
    exact = [(a, b) for a, b in pairs if 5e-324 not in (abs(a), abs(b))]
    for (a, b), g in zip(pairs, got[tail]):
        if (a, b) in exact and not math.isnan(g):
            assert g == math.atan2(b, a) and math.copysign(1.0, g) == math.copysign(1.0, math.atan2(b, a)), (a, b)


def test_kernels_reject_wrong_dtypes():
    with pytest.raises(TypeError):
        _kernels._ckernels.resample_cycles(np.zeros((10, 2), np.float32), np.zeros(2), np.zeros(2),
                                           np.zeros((4, 2)), 10, 2, 1, 4, 0.0)
    with pytest.raises(ValueError):
        _kernels._ckernels.resample_cycles(np.zeros((10, 2)), np.zeros(2), np.zeros(2), np.zeros((3, 2)),
                                           10, 2, 1, 4, 0.0)


def test_kernels_take_an_array_as_the_buffer_protocol_does_whichever_way_they_read_it():
    # numpy arrays are read through numpy's C API (args.c), other objects through the buffer protocol: both accept
    # a C-contiguous native float64 array, and refuse the same arrays with the same errors
    def call(samples, win):
        _kernels._ckernels.window_append(samples, np.arange(7.0), win, 1, 1, 7, 7, 1, 8, 0, 1, 0)
        return win
    samples = np.arange(7.0)
    want = np.zeros((1, 8))
    want[0, :7] = samples
    np.testing.assert_array_equal(call(samples, np.zeros((1, 8))), want)
    np.testing.assert_array_equal(call(memoryview(samples), np.zeros((1, 8))), want)
    read_only = np.zeros((1, 8))
    read_only.setflags(write=False)
    for given, win, error in ((np.arange(14.0)[::2], np.zeros((1, 8)), ValueError),            # not contiguous
                              (np.zeros((7, 2))[:, 0], np.zeros((1, 8)), ValueError),
                              (samples, read_only, ValueError),
                              (samples.astype(np.float32), np.zeros((1, 8)), TypeError),
                              (samples.astype(">f8"), np.zeros((1, 8)), TypeError),           # not native
                              (samples.astype(np.int64), np.zeros((1, 8)), TypeError),
                              (list(samples), np.zeros((1, 8)), TypeError)):
        with pytest.raises(error):
            call(given, win)


def _tracker_signal(fs: float) -> np.ndarray:
    """6 s of a 230 V reference: 50 Hz with a 5th harmonic and noise, a step to 51.5 Hz, a ramp back, a dip to
    60 %, an interruption (2 % of Udin: below the tracker's voltage threshold) and a phase jump."""
    rng = np.random.default_rng(11)
    n = int(6 * fs)
    f = np.full(n, 50.0)
    f[int(1.0 * fs):] = 51.5
    ramp = slice(int(2.0 * fs), int(3.0 * fs))
    f[ramp] = np.linspace(51.5, 49.2, ramp.stop - ramp.start)
    f[int(3.0 * fs):] = 49.2
    phase = 2 * np.pi * np.cumsum(f) / fs
    phase[int(5.0 * fs):] += 1.1
    amp = np.full(n, 325.0)
    amp[int(3.5 * fs):int(3.8 * fs)] *= 0.6
    amp[int(4.2 * fs):int(4.5 * fs)] *= 0.02
    return amp * (np.sin(phase) + 0.05 * np.sin(5 * phase)) + rng.normal(0, 2.0, n)


def _track(y: np.ndarray, fs: float, kernel, blocks: list[tuple[int, int]], weights: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    from metrology.frequency import CycleTracker

    tracker = CycleTracker(fs, 50.0, 0.1 * 230 * np.sqrt(2))
    tracker_kernel = _kernels.track_block
    _kernels.track_block = kernel
    try:
        found = [tracker.process(y[a:b], a, weights) for a, b in blocks]
    finally:
        _kernels.track_block = tracker_kernel
    return np.concatenate([f.index for f in found]), np.concatenate([f.real for f in found])


def test_track_block_agrees_through_steps_dips_interruptions_and_gaps():
    fs = 32000.0
    y = _tracker_signal(fs)
    edges = list(range(0, y.size, 4096)) + [y.size]
    blocks = [(a, b) for a, b in zip(edges, edges[1:])]
    gapped = [blk for i, blk in enumerate(blocks) if i not in (9, 30, 31, 32)]     # a short and a long gap
    for run in (blocks, gapped):
        t_c, real_c = _track(y, fs, _kernels.c_track_block, run)
        t_r, real_r = _track(y, fs, reference.track_block, run)
        assert t_c.size > 250 and not real_c.all() and real_c.any()          # virtual boundaries in the interruption
        np.testing.assert_array_equal(real_c, real_r)
        np.testing.assert_allclose(t_c, t_r, rtol=0, atol=1e-9)


def test_track_block_of_weighted_inputs_in_blocks_of_any_size_agrees():
    from metrology.systems import wiring

    fs = 32000.0
    rng = np.random.default_rng(15)
    y = _tracker_signal(fs)[:int(3 * fs)]
    shifts = (0.0, -2 * np.pi / 3, 2 * np.pi / 3)
    x = rng.normal(0, 1.0, (y.size, 7))
    x[:, 1::2] += np.stack([np.roll(y, int(s * fs / (2 * np.pi * 50))) for s in shifts], axis=1)
    # blocks shorter than the tail, than the history (a period), and long ones; a short gap (a bridge)
    sizes = [3, 1, 2, 150, 700, 4096, 37, 5000, 290, 100]
    edges, at, k = [], 0, 0
    while at < y.size:
        edges.append((at, min(at + sizes[k % len(sizes)], y.size)))
        at = edges[-1][1] + (300 if k == 20 else 0)
        k += 1
    for weights in (wiring("4W-WYE").reference, wiring("2L").reference, rng.normal(size=7)):
        t_c, real_c = _track(x, fs, _kernels.c_track_block, edges, weights)
        t_r, real_r = _track(x, fs, reference.track_block, edges, weights)
        assert t_c.size > 100
        np.testing.assert_array_equal(real_c, real_r)
        np.testing.assert_allclose(t_c, t_r, rtol=0, atol=1e-9)


def test_track_block_keeps_the_tail_history_and_state_as_the_reference():
    from metrology.frequency import CycleTracker

    tracker = CycleTracker(32000.0, 50.0, 30.0)
    y = _tracker_signal(32000.0)[:20000]
    w = np.array([0.0, 1.0, 0.5])
    x = np.stack([np.zeros(y.size), y, 0.1 * y], axis=1)
    # zi, tail, history rows, state: one set for each
    c_state, r_state = ([np.zeros((2, 2)), np.zeros(tracker.tail_len), np.zeros((tracker.history_len, 3)),
                         np.array([640.0, np.nan, 0.0, 1.0, 0.0])] for _ in range(2))
    p = tracker._params.copy()
    found = 0
    # the blocks' rows copied into a store, the boundaries written into arrays given (as the pipeline has it)
    c_rows, r_rows = np.full((20000, 3), np.nan), np.full((20000, 3), np.nan)
    c_out, r_out = np.full((2, 9000), np.nan), np.full((2, 9000), np.nan)
    for i, (lo, hi) in enumerate(((0, 100), (100, 4196), (4196, 4200), (4200, 12000), (12000, 20000))):
        p[0] = lo
        extra = ((c_rows[lo:hi], c_out[0, lo // 4:], c_out[1, lo // 4:]), (r_rows[lo:hi], r_out[0, lo // 4:],
                                                                             r_out[1, lo // 4:])) if i % 2 else ((), ())
        got = _kernels.c_track_block(x[lo:hi], w, tracker.sos, *c_state, tracker._delay_table, p, *extra[0])
        want = reference.track_block(x[lo:hi], w, tracker.sos, *r_state, tracker._delay_table, p, *extra[1])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
        for a, b in zip(c_state, r_state):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-9)
        if i % 2:
            assert np.shares_memory(got[0], c_out) and np.shares_memory(want[1], r_out)
            np.testing.assert_array_equal(c_rows[lo:hi], x[lo:hi])
            np.testing.assert_array_equal(r_rows[lo:hi], x[lo:hi])
        found += got[0].size
    assert found > 25 and c_state[3][4] == tracker.tail_len and c_state[2][-1, 1] == y[-1]
    np.testing.assert_array_equal(c_out, r_out)
    assert np.isnan(c_rows[:100]).all() and not np.isnan(c_rows[100:4196]).any()


def test_track_crossings_drops_noise_crossings_and_updates_the_state_alike():
    fs = 32000.0
    rng = np.random.default_rng(12)
    t = np.arange(8000) / fs
    y = 300 * np.sin(2 * np.pi * 57.3 * t) + rng.normal(0, 40, t.size)      # noisy: several crossings a cycle
    params = np.array([1000.0, 39.0, 0.01, fs, 50.0, 1200.0, fs / 70, fs / 40, 0.75, 0.02, 0.5])
    table = np.linspace(60.0, 40.0, 3201)
    for start in ((fs / 57.3, np.nan, 0.0, 1.0), (fs / 50, 1100.0, 1.0, 0.0), (fs / 57.3, 1300.0, 0.0, 0.0)):
        st_c, st_r = np.array(start), np.array(start)
        t_c, real_c = _kernels.c_track_crossings(y, 1, 250, st_c, table, params)
        t_r, real_r = reference.track_crossings(y, 1, 250, st_r, table, params)
        assert 10 < t_c.size < len(reference.rising_crossings(y, 1, 250)[0])        # some dropped as noise
        np.testing.assert_array_equal(real_c, real_r)
        np.testing.assert_allclose(t_c, t_r, rtol=0, atol=1e-9)
        np.testing.assert_allclose(st_c, st_r, rtol=0, atol=1e-9)


def test_cycle_change_agrees_for_every_wiring_with_and_without_a_previous_cycle():
    from metrology.settings import SYSTEM_TYPES
    from metrology.systems import V_LL, V_LN, wiring

    rng = np.random.default_rng(13)
    th = 2 * np.pi * (np.arange(6 * 512) / 512)
    x = np.stack([325 * np.cos(th + k) for k in range(7)], axis=1).reshape(6, 512, 7)
    x[3, 100:103, 1] += 60.0                                           # an impulse on VA in cycle 3
    x[4:] *= 0.7                                                       # a step (a dip) from cycle 4
    x += rng.normal(0, 0.5, x.shape)
    x[2, 7, 6] = np.nan                                                # a NaN on an input no voltage uses
    for system in SYSTEM_TYPES:
        cols = V_LL if system in ("DELTA", "2L") else V_LN
        matrix = wiring(system).matrix[:, cols] * 100.0                # a PT ratio
        matrix[6] = 0.0
        for prev in (None, rng.normal(0, 300, (512, 3))):
            got, last = cycle_change_of(_kernels.c_cycle_change, x, matrix, prev)
            want, want_last = cycle_change_of(reference.cycle_change, x, matrix, prev)
            assert got.shape == (6,) and got[3] > got[2]
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
            np.testing.assert_allclose(last, want_last, rtol=1e-12, atol=1e-9)
            np.testing.assert_allclose(last, x[-1] @ matrix, rtol=1e-12, atol=1e-9)
    with pytest.raises(ValueError):
        _kernels._ckernels.cycle_change(np.zeros(9 * 4), np.zeros(9), np.zeros(0), np.zeros(1), np.zeros(4), 1, 4, 9, 1,
                                        False)
    shared = np.zeros(4 * 2 + 4)                    # last is written while x is read: sharing memory is refused
    with pytest.raises(ValueError):
        _kernels._ckernels.cycle_change(shared, np.ones(2), np.zeros(0), np.zeros(1), shared[:4], 1, 4, 2, 1, False)
    out, last = np.empty(6), np.empty((3, 512))              # the last cycle goes back as the next prev
    assert _kernels.c_cycle_change(x, matrix, None, out, last) == out.max()
    again = np.empty(6)
    _kernels.c_cycle_change(x, matrix, last, again, np.empty((3, 512)))
    np.testing.assert_array_equal(again, cycle_change_of(_kernels.c_cycle_change, x, matrix, last.T)[0])
    np.testing.assert_allclose(again, cycle_change_of(reference.cycle_change, x, matrix, last.T)[0], rtol=1e-12, atol=1e-9)
    empty, kept = np.empty(0), np.empty((3, 512))               # no cycle: prev goes on, the change is 0
    assert _kernels.c_cycle_change(x[:0], matrix, last, empty, kept) == 0.0
    np.testing.assert_array_equal(kept, last)
    assert reference.cycle_change(x[:0], matrix, None, empty, kept) == 0.0 and not kept.any()


@pytest.mark.parametrize("s", [512, 31, 17, 16, 5, 1])
def test_cycle_change_agrees_for_any_cycle_length_with_nan_on_a_voltage(s):
    # the kernel takes sixteen samples a step and the rest one by one: every length, a NaN where a voltage reads it
    from metrology.systems import V_LL, V_LN, wiring

    rng = np.random.default_rng(s)
    x = rng.normal(0, 300, (5, s, 7))
    x[1, s // 2, 3] = np.nan
    x[3, s - 1, 1] = np.nan
    for system, cols in (("4W-WYE", V_LN), ("DELTA", V_LL)):
        matrix = wiring(system).matrix[:, cols] * 100.0
        for prev in (None, rng.normal(0, 300, (s, 3))):
            got, last = cycle_change_of(_kernels.c_cycle_change, x, matrix, prev)
            want, want_last = cycle_change_of(reference.cycle_change, x, matrix, prev)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
            np.testing.assert_allclose(last, want_last, rtol=1e-12, atol=1e-9)
            assert np.isfinite(got).all() and got.max() > 0


def test_harmonic_values_agrees_on_window_spectra_with_absent_and_weak_signals():
    from metrology.harmonics import HARMONIC_SIGNALS, N_ORDERS, fundamental_floor, spectrum_lines

    rng = np.random.default_rng(14)
    floor = fundamental_floor(230.0, 5.0)
    for n in (1, 2, 4, 10, 12):
        length = n * 512
        th = 2 * np.pi * np.arange(length) / 512 * (1 + 1e-4)                  # slightly off-synchronous
        x = np.stack([a * (np.cos(th + k) + 0.05 * np.cos(5 * th) + 0.02 * np.cos(2.5 * th))
                      for k, a in enumerate((325, 325, 310, 560, 560, 560, 7, 7, 0.01, 0.0))])
        x += rng.normal(0, 0.01, x.shape)
        x[9] = 0.0                                                               # an absent signal: ratios NaN
        lines = np.fft.rfft(x, axis=1)[:, :spectrum_lines(n)]
        rms, peak = np.sqrt((x * x).mean(axis=1)), np.abs(x).max(axis=1)
        for h1_min, tdd_current in ((None, 5.0), (floor, 0.0)):
            got = _kernels.c_harmonic_values(lines, n, N_ORDERS, length, rms, peak, tdd_current, 6, h1_min)
            want = reference.harmonic_values(lines, n, N_ORDERS, length, rms, peak, tdd_current, 6, h1_min)
            for a, b in zip(got, want):
                assert a.shape == b.shape and a.shape[-1] in (HARMONIC_SIGNALS, N_ORDERS)
                np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
            assert np.isnan(got[4][:6, 9]).all() and (np.isnan(got[4][0, 8]) == (h1_min is not None))


def test_block_squares_agrees_for_the_flicker_voltages_of_every_wiring():
    from metrology.settings import SYSTEM_TYPES
    from metrology.systems import V_LL, V_LN, wiring

    rng = np.random.default_rng(15)
    t = np.arange(4100) / 32000.0
    x = np.stack([325 * (1 + 0.01 * np.sin(2 * np.pi * 8.8 * t)) * np.cos(2 * np.pi * 50 * t + k) for k in range(7)],
                 axis=1) + rng.normal(0, 1, (t.size, 7))
    x[2000:2600] *= 0.3                                                      # a dip
    for system in SYSTEM_TYPES:
        cols = V_LL if system in ("DELTA", "2L") else V_LN
        matrix = wiring(system).matrix[:, cols] * 100.0
        for d in (1, 32, 33):
            got, want = _kernels.c_block_squares(x, matrix, d), reference.block_squares(x, matrix, d)
            assert got.shape == (x.shape[0] // d, 3)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(_kernels.c_block_squares(x[:, :3], np.eye(3), 32),
                               reference.block_squares(x[:, :3], np.eye(3), 32), rtol=1e-12)


def test_flicker_squares_agrees_with_block_squares_of_the_carried_rows_and_the_block():
    from metrology.systems import V_LL, V_LN, wiring

    rng = np.random.default_rng(16)
    x = rng.normal(0, 300, (9200, 7))
    for matrix in (wiring("4W-WYE").matrix[:, V_LN] * 100.0, wiring("DELTA").matrix[:, V_LL], rng.normal(size=(7, 5))):
        k = matrix.shape[1]
        for d in (1, 32, 33):
            carry_c, carry_r = np.zeros((d, 7)), np.zeros((d, 7))
            nc, lo, t_first = 0, 0, 1.7e18
            for n in (0, 5, d - 1, 4096, 31, 3 * d, 2000, 7, 2857):
                out_c, out_r = np.full((n // d + 2, k), -1.0), np.full((n // d + 2, k), -1.0)
                times_c, times_r = np.full(n // d + 2, -1.0), np.full(n // d + 2, -1.0)
                got = _kernels.c_flicker_squares(x[lo:lo + n], matrix, carry_c, nc, t_first, d * 1e9 / 32000,
                                                 out_c, times_c)
                want = reference.flicker_squares(x[lo:lo + n], matrix, carry_r, nc, t_first, d * 1e9 / 32000,
                                                 out_r, times_r)
                assert got == want == (nc + n) // d
                np.testing.assert_allclose(out_c, out_r, rtol=1e-12, atol=1e-9)
                np.testing.assert_array_equal(times_c, times_r)
                nc = (nc + n) % d
                np.testing.assert_array_equal(carry_c[:nc], carry_r[:nc])
                np.testing.assert_array_equal(carry_c[:nc], x[lo + n - nc:lo + n])
                lo, t_first = lo + n, t_first + got * d * 1e9 / 32000
        # the squares of whole runs are block_squares' to the last bit
        out = np.empty((9200 // 32, k))
        assert _kernels.c_flicker_squares(x, matrix, np.zeros((32, 7)), 0, 0.0, 1.0, out, np.empty(9200 // 32)) == 287
        np.testing.assert_array_equal(out, _kernels.c_block_squares(x, matrix, 32))


def test_event_screen_agrees_through_dips_swells_rvc_steps_and_nan():
    rng = np.random.default_rng(16)
    u = 230.0 + rng.normal(0, 0.3, (400, 3))
    u[150:160, 1] = 180.0                                                # a dip on one channel
    u[200:210] = 260.0                                                   # a swell
    u[260:] += 14.0                                                      # an RVC step (6 % of 230 V)
    u[300, 2] = np.nan                                                   # a channel without a value
    params = np.array([207.0, 253.0, 11.5])
    for n_rvc in (100, 120):
        for lo in range(0, 400, 16):
            hist = u[max(lo - n_rvc, 0):lo]
            for enabled in (True, False):
                want = reference.event_screen(u[lo:lo + 16], hist, n_rvc, params, enabled)
                got = _kernels.c_event_screen(u[lo:lo + 16], hist, n_rvc, params, enabled)
                assert got[0] == want[0]
                np.testing.assert_array_equal(got[1], want[1])
    flagged = [lo for lo in range(0, 400, 16)
               if _kernels.c_event_screen(u[lo:lo + 16], u[max(lo - 120, 0):lo], 120, params, True)[1].any()]
    assert 256 in flagged and 144 in flagged and not set(range(0, 144, 16)) & set(flagged)    # steady: none


def test_flicker_chain_agrees_with_the_filters_run_one_by_one():
    from metrology.flicker import FlickerMeter
    from metrology.iir import sosfilt_zi

    meter = FlickerMeter(32000.0, 50.0, 230, channels=3)
    rng = np.random.default_rng(17)
    t = np.arange(3000) / meter.rate
    ms = 52900.0 * (1 + 0.02 * np.sin(2 * np.pi * 8.8 * t))[:, None] * np.array([1.0, 1.01, 0.99])
    ms += rng.normal(0, 5.0, ms.shape)
    ms[1000:1300] *= 0.5                                                   # a dip
    ms[2000:2100, 2] = 0.0                                                 # a channel without voltage
    sos = meter._filters
    zi = np.zeros((sos.shape[0], 2, 3))
    zi[1:-1] = sosfilt_zi(sos[1:-1])[:, :, None] * 52900.0
    zi[0, 0] = meter._adapt * 52900.0
    z_c = z_r = zi
    for lo in range(0, ms.shape[0], 700):
        y_c, z_c = _kernels.c_flicker_chain(ms[lo:lo + 700], sos, z_c, meter.gain)
        y_r, z_r = reference.flicker_chain(ms[lo:lo + 700], sos, z_r, meter.gain)
        np.testing.assert_allclose(y_c, y_r, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(z_c, z_r, rtol=1e-9, atol=1e-9)
    assert np.all(y_c >= 0) and y_c.max() > 0.1


def test_flicker_chain_of_three_channels_at_once_is_each_channel_alone_to_the_last_bit():
    from metrology.flicker import FlickerMeter
    from metrology.iir import sosfilt_zi

    meter = FlickerMeter(32000.0, 60.0, 120, channels=3)
    rng = np.random.default_rng(18)
    ms = 14400.0 * (1 + 0.01 * np.sin(2 * np.pi * 8.8 * np.arange(2000) / meter.rate))[:, None] * np.ones(4)
    ms += rng.normal(0, 5.0, ms.shape)
    ms[500:600, 1] = 0.0                                                   # a channel without voltage
    ms[900, 2] = np.nan
    sos = meter._filters
    zi = np.zeros((sos.shape[0], 2, 4))
    zi[1:-1] = sosfilt_zi(sos[1:-1])[:, :, None] * 14400.0
    zi[0, 0] = meter._adapt * 14400.0
    for ch in (2, 3, 4):                    # a pair; the three-lane pass; two pairs
        y, zf = _kernels.c_flicker_chain(ms[:, :ch], sos, zi[:, :, :ch], meter.gain)
        for c in range(ch):
            y1, z1 = _kernels.c_flicker_chain(ms[:, c:c + 1], sos, zi[:, :, c:c + 1], meter.gain)
            np.testing.assert_array_equal(y[:, c], y1[:, 0])
            np.testing.assert_array_equal(zf[:, :, c], z1[:, :, 0])
        assert np.isfinite(y[:, :2]).all() and (ch == 2 or np.isnan(y[:, 2]).any())


def _disturbed_run(system_type: str, **settings):
    """The pipeline's results on 3 s of three-phase 60 Hz with a sag on A, a step to 61.5 Hz, an interruption,
    phase C without current, and two lost blocks."""
    from metrology.pipeline import Pipeline
    from metrology.settings import MetrologySettings

    fs, rng = 32000.0, np.random.default_rng(17)
    n = int(3 * fs)
    f = np.where(np.arange(n) < 1.5 * fs, 60.0, 61.5)
    th = 2 * np.pi * np.cumsum(f) / fs
    x = np.zeros((n, 7))
    # A delivers with the current lagging (Q1), B receives (Q2), C carries no current
    for p, (shift, amps, lag) in enumerate(((0.0, 7.0, 0.6), (-2 * np.pi / 3, 3.0, 2.5), (2 * np.pi / 3, 0.0, 0.0))):
        a = th + shift
        x[:, 2 * p + 1] = 325 * (np.cos(a) + 0.04 * np.cos(5 * a))
        x[:, 2 * p] = amps * (np.cos(a - lag) + 0.1 * np.cos(3 * a))
    x[int(0.7 * fs):int(0.9 * fs), 1] *= 0.4                                  # sag on A
    x[int(2.2 * fs):int(2.4 * fs), 1::2] *= 0.01                             # interruption: cycles not measured
    x[:, 6] = -(x[:, 0] + x[:, 2] + x[:, 4])
    x += rng.normal(0, 0.05, x.shape)
    pl = Pipeline(MetrologySettings(system_type=system_type, **settings))
    results = [pl.feed_values(x[i:i + 4096], i, 10**18 + int(i * 1e9 / fs))
               for i in range(0, n, 4096) if i // 4096 not in (9, 10)]
    return pl, results


def _cycles_of_a_disturbed_run(system_type: str):
    """The cycle measures of ``_disturbed_run``."""
    from metrology.cycle import CycleMeasures

    pl, results = _disturbed_run(system_type)
    return pl, CycleMeasures.concat([r.cycles for r in results if r.cycles is not None])


def test_interval_values_agrees_on_windows_and_seconds_through_a_sag_an_interruption_a_frequency_step_and_a_gap():
    from metrology.intervals import sequence_matrix
    from metrology.settings import SYSTEM_TYPES

    names = [name for name, size in reference.INTERVAL_VALUES for _ in range(size)]
    u_index = [k for k, name in enumerate(names) if name in ("v_u0", "v_u2", "i_u0", "i_u2")]
    for system_type in SYSTEM_TYPES:
        pl, cm = _cycles_of_a_disturbed_run(system_type)
        assert cm.count > 150 and np.isnan(cm.freq).any() and (cm.freq > 61).any()
        runs = [(slice(lo, lo + 12), np.full(12, 1 / 12)) for lo in range(0, cm.count - 12, 12)]
        runs.append((slice(0, cm.count), cm.duration_s / cm.duration_s.sum()))          # duration-weighted
        for (rows, weights), ieee, order in zip(runs, (True, False) * len(runs), ("ABC", "ACB", "ACB") * len(runs)):
            args = (cm.ms[rows], cm.vi[rows], cm.fund[rows], cm.duration_s[rows], cm.freq[rows], weights,
                    pl.present, pl.creep, ieee, sequence_matrix(order))
            got, want = _kernels.c_interval_values(*args), reference.interval_values(*args)
            assert got.shape == want.shape == (reference.INTERVAL_SIZE,)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
            # u0 and u2 divide by the positive sequence, a cancellation where the phase order is against the
            # rotation (ACB here): its rounding grows by |V| / |V+|
            loose = np.isin(np.arange(got.size), u_index)
            np.testing.assert_allclose(got[~loose], want[~loose], rtol=1e-12, atol=1e-9)
            np.testing.assert_allclose(got[loose], want[loose], rtol=1e-7, atol=1e-9)


def test_interval_energy_agrees_with_and_without_losses_delivered_and_received_through_disturbances():
    from metrology.energy import EnergyIncrement
    from metrology.settings import SYSTEM_TYPES, LossCoefficients, LossCompensation

    losses = LossCompensation(True, 1e5, 230.0, 5.0, LossCoefficients(0.1, 0.3, 0.5, 1.0),
                              LossCoefficients(0.2, 0.4, 0.7, 1.3))
    names = EnergyIncrement.quantities()
    for system_type in SYSTEM_TYPES:
        pl, cm = _cycles_of_a_disturbed_run(system_type)
        seconds = [slice(lo, lo + 61) for lo in range(0, cm.count, 61)]
        for rows, loss in zip(seconds, (losses, LossCompensation(), losses)):
            args = (cm.ms[rows], cm.vi[rows], cm.fund[rows], cm.duration_s[rows], pl.present, pl.creep, loss)
            got, want = _kernels.c_interval_energy(*args), reference.interval_energy(*args)
            assert got.shape == want.shape == (2, len(names), 4)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
            assert (got[1] != 0).any() == loss.enabled
        if system_type == "4W-WYE":      # both directions and the losses' coefficients of each were exercised
            assert (got[0, names.index("wh_del")][:2] > 0).tolist() == [True, False]
            assert (got[0, names.index("wh_rec")][:2] > 0).tolist() == [False, True]
            assert (got[1, names.index("wh_del")] > got[0, names.index("wh_del")])[0]


def test_window_harmonics_agrees_for_every_wiring_window_length_and_signalling_set():
    from metrology import signalling
    from metrology.harmonics import HARMONIC_SIGNALS, N_ORDERS, fundamental_floor
    from metrology.settings import SYSTEM_TYPES
    from metrology.systems import V_LL, V_LN, wiring

    rng = np.random.default_rng(18)
    floor = fundamental_floor(230.0, 5.0)
    for system_type in SYSTEM_TYPES:
        matrix = wiring(system_type).matrix
        used = np.flatnonzero(np.any(matrix[:, :HARMONIC_SIGNALS] != 0, axis=1))
        fft_matrix = np.ascontiguousarray(matrix[used, :HARMONIC_SIGNALS].T)
        for n, nominal, freqs in ((12, 60.0, (175.0, 316.67, 1050.0, 2000.0)), (10, 50.0, (110.0, 3000.0)),
                                  (3, 60.0, ()), (1, 50.0, (500.0,))):
            # the window's resampled inputs: 2 % off-synchronous (a frequency step), a 5th, an interharmonic, a sag
            th = 2 * np.pi * np.arange(n * 512) / 512 * 1.02
            x = np.stack([a * (np.cos(th - 2 * np.pi * (k // 2) / 3 - 0.4 * (k % 2 == 0))
                               + 0.05 * np.cos(5 * th) + 0.01 * np.cos(7.5 * th)) for k, a in enumerate((7, 325, 3, 325, 0.0, 325, 2))], axis=1)
            x[: 512 * max(n // 3, 1), 1] *= 0.5
            x += rng.normal(0, 0.01, x.shape)
            _, ms, peak, _, _ = reference.cycle_stats(x.reshape(n, 512, 7), matrix, 0, 6, 3)
            lines = np.fft.rfft(x[:, used].T, axis=1)
            idx, use = signalling.bins(freqs, nominal, n) if freqs else (np.zeros((0, 4)), np.zeros((0, 4)))
            row = (V_LL if system_type in ("DELTA", "2L") else V_LN).start
            for h1_min, tdd_current in ((None, 5.0), (floor, 0.0)):
                args = (lines, fft_matrix, ms, peak, n, N_ORDERS, n * 512, tdd_current, 6, h1_min, idx, use, row)
                got, want = _kernels.c_window_harmonics(*args), reference.window_harmonics(*args)
                # an angle of exactly ±180° (opposite phases) may round to either end
                got[3][:], want[3][:] = (got[3] - want[3] + 180.0) % 360.0 - 180.0, 0.0
                for a, b in zip(got, want):
                    assert a.shape == b.shape
                    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
                    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
                assert got[-1].shape == (3, len(freqs)) and (not freqs or got[-1][0].min() > 0.0)


def test_aggregate_add_agrees_over_the_windows_of_a_disturbed_run_with_absent_phases():
    from metrology.intervals import RMS_KEYS
    from metrology.pipeline import Pipeline
    from metrology.settings import MetrologySettings

    fs, rng = 32000.0, np.random.default_rng(19)
    th = 2 * np.pi * 60.0 * np.arange(int(2 * fs)) / fs
    x = np.zeros((th.size, 7))
    x[:, 1], x[:, 0] = 325 * np.cos(th), 5 * np.cos(th - 0.3)         # SINGLE: phases B and C absent (NaN values)
    x[int(0.8 * fs):int(1.0 * fs), 1] *= 0.05                           # an interruption
    x += rng.normal(0, 0.05, x.shape)
    pl = Pipeline(MetrologySettings(system_type="SINGLE", nominal_frequency=60.0))
    windows = [w for i in range(0, th.size, 4096)
               for w in pl.feed_values(x[i:i + 4096], i, 10**18 + int(i * 1e9 / fs)).windows]
    keys = list(windows[0].values)
    flats = [np.concatenate([w.values[k] for k in keys], axis=None, dtype=np.float64) for w in windows]
    flats[3][:5] = (np.inf, -np.inf, np.nan, -0.0, 1e150)
    square = np.repeat([1.0 if k in RMS_KEYS else 0.0 for k in keys], [np.size(windows[0].values[k]) for k in keys])
    width = square.size
    states = []
    for add in (_kernels.c_aggregate_add, reference.aggregate_add):
        st = [np.zeros(width), np.zeros(width), np.full(width, np.nan), np.zeros(width), np.empty(width)]
        for flat in flats:
            add(flat, square, *st)
        states.append(st)
        # the same windows as rows, several to a call (blocks of items, every row into each): the same sums
        rows = [np.zeros(width), np.zeros(width), np.full(width, np.nan), np.zeros(width), np.empty(width)]
        for lo, hi in ((0, 1), (1, 6), (6, 6), (6, len(flats))):
            add(np.stack(flats[lo:hi]) if hi > lo else np.zeros((0, width)), square, *rows)
        for got, want in zip(rows, st):
            np.testing.assert_array_equal(got, want)
    assert len(flats) >= 8 and np.isnan(flats[0]).any()
    for got, want in zip(*states):
        np.testing.assert_array_equal(got, want)


def test_aggregate_result_agrees_on_sums_with_absent_values_infinities_and_empty_counts():
    """Sums as aggregate_add leaves them, with values that have no finite item (NaN, or infinities: their latest
    stays), items never counted (NaN mean), each kind, and values of one item and of none."""
    rng = np.random.default_rng(23)
    sizes = [3, 1, 640, 4, 1, 0, 10, 2, 7]
    w = sum(sizes)
    bounds = np.cumsum([0] + sizes).astype(np.float64)
    kind = np.repeat([1.0, 2.0, 1.0, 3.0, 0.0, 1.0, 3.0, 2.0, 5.0], sizes)
    for case in range(4):
        total, count = rng.uniform(0.0, 100.0, w), rng.integers(0, 4, w).astype(np.float64)
        peak, latest = rng.normal(0.0, 5.0, w), rng.normal(0.0, 5.0, w)
        finite = (rng.random(w) < 0.7).astype(np.float64)
        if case:
            finite[:3] = finite[644:648] = 0.0                  # v_ln-like and a maximum with nothing finite
            latest[644:646], peak[644:646], total[:2] = np.inf, -np.inf, np.inf
            count[3] = 0.0
            total[648 + case % 2] = np.nan
        sums = np.stack([total, count, peak, finite, latest])
        got, want = _kernels.c_aggregate_result(sums, kind, bounds), reference.aggregate_result(sums, kind, bounds)
        assert got.shape == want.shape == (w,)
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError):
        reference.aggregate_result(sums, kind, bounds[:-1])


def test_cycle_times_agree_on_the_cycles_of_a_disturbed_run_and_round_halves_to_even():
    _, cm = _cycles_of_a_disturbed_run("4W-WYE")
    origin = 1_700_000_000_123_456_789
    for start, end, origin_ns, ns_per_sample in (
            (cm.start, cm.end, origin, 1e9 / 32000.0),
            (cm.start - cm.start[0] - 0.7, cm.end - cm.start[0] - 0.7, -origin, 1e9 / 32000.0),     # below index 0
            (np.arange(-4, 8) + 0.25, np.arange(-4, 8) + 1.25, 0, 2.0)):                       # exact halves
        got = _kernels.c_cycle_times(start, end, origin_ns, ns_per_sample)
        want = reference.cycle_times(start, end, origin_ns, ns_per_sample)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)
        assert len(got) == 3 and got[0].base is got[1].base is got[2].base
        np.testing.assert_array_equal(got[2][1::2], got[1])
    assert got[0].tolist() == [-8, -6, -4, -2, 0, 2, 4, 6, 8, 10, 12, 14]          # 2 j + 0.5 to the even one
    assert reference.half_ends(np.array([0.0, 3.0]), np.array([3.0, 5.5])).tolist() == [1.5, 3.0, 4.25, 5.5]
    with pytest.raises(ValueError):                 # the times are written while the boundaries are read
        ns = np.zeros(8, dtype=np.int64)
        _kernels._ckernels.cycle_times(ns[:2].view(np.float64), np.zeros(2), ns, 2, 0, 1.0)
    with pytest.raises(ValueError):                 # times for 2 cycles need 8 items
        _kernels._ckernels.cycle_times(np.zeros(2), np.zeros(2), np.zeros(7, dtype=np.int64), 2, 0, 1.0)


def test_window_append_agrees_for_the_inputs_of_every_wiring_and_a_window_cut_short():
    from metrology.harmonics import HARMONIC_SIGNALS
    from metrology.settings import SYSTEM_TYPES
    from metrology.systems import wiring

    rng = np.random.default_rng(20)
    samples = rng.normal(size=(9, 512, 7))
    orders = [np.flatnonzero(np.any(wiring(t).matrix[:, :HARMONIC_SIGNALS] != 0, axis=1)) for t in SYSTEM_TYPES]
    for used in orders + [np.array([6, 0, 3]), np.array([2, 2, 5, 1])]:     # out of order, an input twice
        width = -(-used.size // 4) * 4
        wins = [np.full((12 * 512, width), np.nan) for _ in range(2)]
        for lo, hi, at in ((0, 4, 0), (4, 9, 4 * 512), (2, 2, 9 * 512), (6, 9, 9 * 512)):     # the last fills it
            _kernels.c_window_append(samples, used.astype(np.float64), wins[0], lo, hi, at)
            reference.window_append(samples, used, wins[1], lo, hi, at)
        np.testing.assert_array_equal(wins[0], wins[1])
        assert not np.isnan(wins[0][:, :used.size]).any() and np.isnan(wins[0][:, used.size:]).all()
        assert wins[0][4 * 512 + 3, used.size - 1] == samples[4, 3, used[-1]]
    with pytest.raises(ValueError):
        _kernels.c_window_append(samples, used.astype(np.float64), wins[0], 6, 9, 10 * 512)     # past its end
    with pytest.raises(ValueError):          # more inputs than the window has columns
        _kernels.c_window_append(samples, np.arange(7.0), np.zeros((12 * 512, 4)), 0, 1, 0)



def test_the_pipeline_on_the_reference_kernels_gives_the_same_values(monkeypatch):
    """What the metrology service runs when the extension is stale: every window, second (with its energy) and
    Urms(1/2) as on the C kernels, within rounding."""
    from metrology.settings import LossCoefficients, LossCompensation

    settings = dict(nominal_frequency=60.0, signalling_hz=(175.0, 1050.0),
                    losses=LossCompensation(True, 1e5, 230.0, 5.0, LossCoefficients(0.1, 0.3, 0.5, 1.0),
                                            LossCoefficients(0.2, 0.4, 0.7, 1.3)))
    _, on_c = _disturbed_run("4W-WYE", **settings)
    for attr in ("BACKEND", "BACKEND_NOTE", *_kernels.KERNELS):
        monkeypatch.setattr(_kernels, attr, getattr(_kernels, attr))
    _kernels.use_reference("test")
    _, on_ref = _disturbed_run("4W-WYE", **settings)
    windows = [(a, b) for c, r in zip(on_c, on_ref) for a, b in zip(c.windows, r.windows, strict=True)]
    seconds = [(a, b) for c, r in zip(on_c, on_ref) for a, b in zip(c.seconds, r.seconds, strict=True)]
    assert len(windows) >= 12 and len(seconds) >= 2
    for a, b in windows + seconds:
        assert (a.start_ns, a.flagged, a.gap) == (b.start_ns, b.flagged, b.gap) and list(a.values) == list(b.values)
        for key, v in a.values.items():
            w = b.values[key]
            if key in ("h_angle", "angle"):          # ±180° may round to either end
                v, w = (np.asarray(v) - w + 180.0) % 360.0 - 180.0, 0.0 * w
            np.testing.assert_allclose(v, w, rtol=1e-7, atol=1e-7, equal_nan=True, err_msg=key)
    for a, b in seconds:
        for inc, ref in ((a.energy, b.energy), (a.energy_comp, b.energy_comp)):
            for name in inc.quantities():
                np.testing.assert_allclose(getattr(inc, name), getattr(ref, name), rtol=1e-9, atol=1e-12)
    for c, r in zip(on_c, on_ref):
        if c.urms_half is not None:
            np.testing.assert_allclose(c.urms_half, r.urms_half, rtol=1e-12)
            np.testing.assert_array_equal(c.half_end_ns, r.half_end_ns)


def test_half_cycle_rms_agrees_with_and_without_the_half_before_through_a_sag_and_an_interruption():
    _, cm = _cycles_of_a_disturbed_run("4W-WYE")
    assert cm.half_ms.shape[1:] == (2, 11) and cm.half_ms[:, :, 0].min() < 0.2 * cm.half_ms[:, :, 0].max()
    for lo, hi in ((0, 1), (0, 9), (9, cm.count)):
        for prev in (None, cm.half_ms[lo - 1, 1] if lo else cm.half_ms[0, 0] * 0.5):
            for channels in (np.array([0, 1, 2]), np.array([3, 5]), np.array([0])):
                got = _kernels.c_half_cycle_rms(cm.half_ms[lo:hi], prev, channels.astype(np.float64))
                want = reference.half_cycle_rms(cm.half_ms[lo:hi], prev, channels)
                for a, b in zip(got, want):
                    assert a.shape == b.shape
                    np.testing.assert_array_equal(a, b)


def test_half_cycle_events_agrees_batch_by_batch_through_a_sag_an_interruption_and_the_history_filling():
    _, cm = _cycles_of_a_disturbed_run("4W-WYE")
    channels = np.array([0.0, 1.0, 2.0])
    nominal = float(np.sqrt(np.median(cm.half_ms[:, :, 0])))
    params = np.array([0.9 * nominal, 1.1 * nominal, 0.05 * nominal])
    quiet = steps = 0
    for n_rvc in (100, 120):
        for rvc_enabled in (True, False):
            state = {name: (np.zeros(11), np.zeros((n_rvc, 3))) for name in ("c", "ref")}
            hist_n, has_prev = 0, False
            for lo in range(0, cm.count, 7):
                half = cm.half_ms[lo:lo + 7]
                n = 2 * half.shape[0]
                got = [np.full((n, 11), -1.0), np.full((n, 3), -1.0), np.full(n, -1.0)]
                want = [np.full((n, 11), -2.0), np.full((n, 3), -2.0), np.full(n, -2.0)]
                rows = _kernels.c_half_cycle_events(half, *state["c"][:1], has_prev, channels, state["c"][1], hist_n,
                                                    params, rvc_enabled, False, *got)
                ref_rows = reference.half_cycle_events(half, *state["ref"][:1], has_prev, channels, state["ref"][1],
                                                       hist_n, params, rvc_enabled, False, *want)
                for a, b in zip(got, want):
                    np.testing.assert_array_equal(a, b)
                assert set(got[2].tolist()) <= {0.0, 1.0}
                assert rows == ref_rows
                np.testing.assert_array_equal(state["c"][0], state["ref"][0])
                np.testing.assert_array_equal(state["c"][1], state["ref"][1])
                # the halves Urms(1/2) is made of: the half before the batch, then its own
                np.testing.assert_array_equal(got[1], reference.half_cycle_rms(
                    half, cm.half_ms[lo - 1, 1] if has_prev else None, channels.astype(np.intp))[1])
                if rows >= 0:
                    quiet += 1
                    assert rows == min(hist_n + n, n_rvc)
                    np.testing.assert_array_equal(state["c"][1][n_rvc - n:], got[1][-n_rvc:])
                    hist_n = rows
                else:
                    steps += 1
                    hist_n = 0
                has_prev = True
            # an event open: never quiet, the history as it was
            before = state["c"][1].copy()
            outs = (np.empty((6, 11)), np.empty((6, 3)), np.empty(6))
            assert _kernels.c_half_cycle_events(np.ascontiguousarray(cm.half_ms[:3]), state["c"][0], True, channels,
                                                state["c"][1], hist_n, params, rvc_enabled, True, *outs) == -1
            np.testing.assert_array_equal(state["c"][1], before)
    assert quiet > 20 and steps > 3          # the run has both: steady batches and the disturbed ones


def test_window_finish_agrees_on_the_windows_of_a_disturbed_run_with_absent_channels_and_opposite_phases():
    _, cm = _cycles_of_a_disturbed_run("4W-WYE")
    rng = np.random.default_rng(21)
    udin = 230.0
    cases = []
    for lo in range(0, cm.count - 12, 12):       # each window's fundamentals: the sag, the interruption, phase C
        fund = cm.fund[lo:lo + 12, :10].mean(axis=0)
        v = np.sqrt(cm.ms[lo:lo + 12, :3].mean(axis=0))
        cases.append((fund, v))
    opposite = np.array([1.0 + 0j, -1.0 + 0j, 0j, -2.0 - 0j, 1j, -1j, 3.0 + 1e-300j, -3.0 - 1e-300j, 5.0, 0j])
    cases.append((opposite, np.array([udin, udin * 0.5, udin * 1.2])))      # exactly Udin, below, above
    cases.append((np.zeros(10, dtype=complex), np.zeros(3)))
    assert any(v.min() < 0.9 * udin for _, v in cases) and any(v.max() > udin for _, v in cases)
    for fund, v in cases:
        for absent in (np.zeros(3), np.array([0.0, np.nan, 0.0]), np.full(3, np.nan)):
            for msv in (np.zeros((3, 0)), rng.uniform(0.0, 5.0, (3, 4))):
                got = _kernels.c_window_finish(fund, v, absent, msv, udin)
                want = reference.window_finish(fund, v, absent, msv, udin)
                for a, b in zip(got, want):
                    assert a.shape == b.shape
                    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
                # numpy's arctan2 may use its own vectorised routine: the angles agree within rounding, and an angle
                # of exactly ±180° may round to either end
                np.testing.assert_allclose((got[0] - want[0] + 180.0) % 360.0 - 180.0, 0.0, atol=1e-9)
                assert ((got[0] >= -180.0) & (got[0] < 180.0)).all()
                np.testing.assert_array_equal(got[1], want[1])
                np.testing.assert_array_equal(got[2], want[2])


def test_the_window_kernels_write_their_values_in_the_arrays_given_as_out_as_they_return_them():
    """interval_values, window_harmonics and window_finish write into ``out`` (views of a window's flat array, as
    the pipeline gives them) the values they return without it, C and reference alike, and return those arrays."""
    from metrology import signalling
    from metrology.harmonics import HARMONIC_SIGNALS, N_ORDERS
    from metrology.intervals import Window, sequence_matrix, window_plan
    from metrology.systems import wiring

    pl, cm = _cycles_of_a_disturbed_run("4W-WYE")
    matrix = wiring("4W-WYE").matrix
    used = np.flatnonzero(np.any(matrix[:, :HARMONIC_SIGNALS] != 0, axis=1))
    fft_matrix = np.ascontiguousarray(matrix[used, :HARMONIC_SIGNALS].T)
    rng = np.random.default_rng(5)
    for lo, freqs in ((0, (175.0, 316.67)), (36, ())):
        rows = slice(lo, lo + 12)
        idx, use = signalling.bins(freqs, 60.0, 12) if freqs else (np.zeros((0, 4)), np.zeros((0, 4)))
        plan = window_plan(HARMONIC_SIGNALS, N_ORDERS, 3, len(freqs) if freqs else None)
        lines = np.fft.rfft(rng.normal(0.0, 100.0, (used.size, 12 * 512)), axis=1)
        iv = (cm.ms[rows], cm.vi[rows], cm.fund[rows], cm.duration_s[rows], cm.freq[rows], np.full(12, 1 / 12),
              pl.present, pl.creep, False, sequence_matrix("ABC"))
        wh = (lines, fft_matrix, cm.ms[rows], cm.peak[rows], 12, N_ORDERS, 12 * 512, 5.0, 6, None, idx, use, 0)
        for kernels in ((_kernels.c_interval_values, _kernels.c_window_harmonics, _kernels.c_window_finish),
                        (reference.interval_values, reference.window_harmonics, reference.window_finish)):
            interval_values, window_harmonics, window_finish = kernels
            flat = np.full(plan.size, 1e300)          # a value none of the kernels gives
            interval, harmonics, finish = plan.views(flat)
            got = interval_values(*iv, interval)
            assert got is interval
            np.testing.assert_array_equal(interval, interval_values(*iv))
            whole = window_harmonics(*wh)
            got_h = window_harmonics(*wh, harmonics)
            assert all(a is b for a, b in zip((got_h[1], got_h[2], got_h[3], got_h[5]), harmonics, strict=True))
            for a, b in zip(got_h, whole, strict=True):
                np.testing.assert_array_equal(a, b)
            wf = (got_h[4], interval[:3], np.zeros(3), got_h[6], 230.0)
            got_f = window_finish(*wf, finish)
            assert all(a is b for a, b in zip(got_f, finish, strict=True))
            for a, b in zip(got_f, window_finish(*wf), strict=True):
                np.testing.assert_array_equal(a, b)
            assert not (flat == 1e300).any()          # every value written in its place
            values = Window.of(0, 1, 0.2, 12, False, False, plan, flat).values
            np.testing.assert_array_equal(values["thd"], got_h[5][0])
            np.testing.assert_array_equal(values["tdd"], got_h[5][6])
            np.testing.assert_array_equal(values["crest"], got_h[5][4])
            np.testing.assert_array_equal(values["h_angle"], got_h[3])
            np.testing.assert_array_equal(values["v_over"], got_f[1][1])
            assert ("msv" in values) == bool(freqs)

