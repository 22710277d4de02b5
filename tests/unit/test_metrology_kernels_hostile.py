"""The C kernels on arguments the pipeline does not normally give them: sizes that are negative or overflow, buffers
that are not aligned, NaN and infinite samples and positions. Each either refuses the call with a ValueError or gives
what its numpy reference gives; none reads or writes outside its buffers."""
import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from metrology import _kernels
from metrology._kernels import reference
from tests.support.kernels import cycle_change_of

pytestmark = pytest.mark.skipif(_kernels.BACKEND != "c", reason="C kernels not built: " + _kernels.BACKEND_NOTE)

BIG = 2 ** 62
# each call: its kernel's arrays (sizes in items, or "misaligned"), then its scalars; every one must raise ValueError
HOSTILE_CALLS = {
    # no * n overflows: the window's lines were taken as enough, line n read 2^62 doubles past them
    "harmonic_values: orders times cycles overflow": ("harmonic_values", [8, 1, 1, 1, 2, 2, 2, 2, 7],
                                                     [1, 0, BIG, 2, 512.0, 0.0, 0, False]),
    "harmonic_groups: orders times cycles overflow": ("harmonic_groups", [8, 1, 1, 2], [1, 0, BIG, 2]),
    "window_harmonics: orders times cycles overflow": ("window_harmonics", [8, 3, 3, 3, 0, 4, 4, 3, 6, 6, 6, 6, 21, 3],
                                                       [1, 0, 3, BIG, 2, 3, 512.0, 0.0, 0, False, 1, 0]),
    # a NaN signalling line passed the range check and became an index
    "window_harmonics: a NaN signalling line": ("window_harmonics", [8, 3, 3, 3, 0, "nan_idx", "use_1", 3, 6, 6, 6,
                                                                     6, 21, 3],
                                                [1, 4, 3, 1, 2, 3, 512.0, 0.0, 0, False, 1, 0]),
    "window_harmonics: a signalling row past the signals": ("window_harmonics", [8, 3, 3, 3, 0, 4, 4, 3, 6, 6, 6, 6,
                                                                                 21, 3],
                                                            [1, 4, 3, 1, 2, 3, 512.0, 0.0, 0, False, 1,
                                                             2 ** 63 - 2]),
    # a negative input count made the x buffer's size negative: rows read before the buffer
    "cycle_stats: a negative input count": ("cycle_stats", [8, 8, 64, 64, 4, 2, 2, 1, 4],
                                            [1, 64, -100_000_000, 2, 0, 0, 0]),
    # m * s * c overflows to 0: a cycle read from an 8-item buffer
    "window_append: cycles times samples overflow": ("window_append", [8, 1, 8], [BIG, 4, 4, 1, 8, 1, 0, 1, 0]),
    # at + the cycles' samples overflows: written 2^63 items past the window
    "window_append: a row past the window": ("window_append", [4, 1, 8], [1, 4, 1, 1, 8, 1, 0, 1, 2 ** 63 - 2]),
    # rows times columns overflows: the window taken as its 8 items, rows written 2^62 columns apart
    "window_append: rows times columns overflow": ("window_append", [4, 1, 8], [1, 4, 1, 1, 8, BIG, 0, 1, 0]),
    # more inputs than the window has columns: each row's last inputs written into the next row, the last past it
    "window_append: more inputs than columns": ("window_append", [28, 7, 8], [1, 4, 7, 7, 4, 2, 0, 1, 0]),
    # N rows of w columns overflows: the transform read 2^62 rows of a 16-item buffer
    "window_rfft: rows times columns overflow": ("window_rfft", [16, 2], [1, 8, BIG, 1]),
    # more columns taken than the window has: the last ones read from the next row, the last row past the buffer
    "window_rfft: more columns than the window has": ("window_rfft", [16, 12], [3, 8, 2, 2]),
    # no row to clamp to: the taps read the row before the buffer
    "resample_cycles: an empty buffer": ("resample_cycles", [0, 2, 1, 4], [0, 1, 1, 4, 0.0]),
    # spc doubles of scratch: the size overflowed to 0 bytes and spc were written
    "resample_cycles: samples per cycle past memory": ("resample_cycles", [1, 1, 1, 0], [1, 1, 0, BIG, 0.0]),
    # the cycles' rows past the log's columns: written after their end
    "cycle_batch: rows past the columns": ("cycle_batch", [14, 2, 2, 7, 77, 8, 8, 56, 4, 4, 4, 4, 88, 44, 44, 12, 88],
                                           [2, 7, 1, 8, 11, 0, 6, 3, 4, 4, 0.0, 32000.0, 42.5, 69.0]),
    "cycle_batch: a row that overflows": ("cycle_batch", [14, 2, 2, 7, 77, 8, 8, 56, 4, 4, 4, 4, 88, 44, 44, 12, 88],
                                          [2, 7, 1, 8, 11, 0, 6, 3, 4, 2 ** 63 - 1, 0.0, 32000.0, 42.5, 69.0]),
    "cycle_batch: columns shorter than their capacity": ("cycle_batch", [14, 2, 2, 7, 77, 8, 8, 56, 4, 4, 4, 4, 88,
                                                                         44, 44, 12, 8],
                                                         [2, 7, 1, 8, 11, 0, 6, 3, 4, 0, 0.0, 32000.0, 42.5, 69.0]),
    "block_squares: rows times inputs overflow": ("block_squares", [8, 4, 1], [BIG, 4, 1, BIG]),
    # n * c overflows: the filter read rows past the inputs
    "track_block: rows times inputs overflow": ("track_block", [8, 4, 12, 4, 4, 4, 5, 4, 11, 8, 8, 0],
                                                [BIG, 4, 2, 4, 1, 4, True, False]),
    "track_block: more sections than the filter holds": ("track_block", [8, 1, 17 * 6, 34, 4, 4, 5, 4, 11, 8, 8, 0],
                                                         [8, 1, 17, 4, 1, 4, False, False]),
    # the block's rows copied into a buffer shorter than them: rows written past it
    "track_block: a copy shorter than the block": ("track_block", [8 * 2, 2, 12, 4, 4, 4, 5, 4, 11, 8, 8, 8 * 2 - 1],
                                                   [8, 2, 2, 4, 1, 4, True, True]),
    # the carried rows and the block make more runs than the output holds: rows written past it
    "flicker_squares: more runs than output rows": ("flicker_squares", [64 * 7, 7 * 3, 32 * 7, 3, 1],
                                                    [64, 7, 3, 32, 31, 1, 0.0, 1.0]),
    "flicker_squares: carried rows not fewer than a run": ("flicker_squares", [7, 7 * 3, 32 * 7, 3, 1],
                                                           [1, 7, 3, 32, 32, 1, 0.0, 1.0]),
    "flicker_squares: rows times inputs overflow": ("flicker_squares", [8, 4, 8, 4, 4], [BIG, 4, 1, 2, 0, 4, 0.0, 1.0]),
    # a history count past its rows: the screen read rows before the history, the quiet batch moved them
    "half_cycle_events: more history rows than it holds": ("half_cycle_events", [2 * 11, 11, 3, 120 * 3, 3, 2 * 11,
                                                                                 2 * 3, 2],
                                                           [1, 11, 3, 120, 121, True, True, False]),
    # 2m * k overflows: Urms(1/2) written past its rows
    "half_cycle_events: cycles times signals overflow": ("half_cycle_events", [8, 8, 1, 8, 3, 8, 8, 8],
                                                         [BIG, 8, 1, 8, 0, True, True, False]),
    "half_cycle_events: a NaN channel": ("half_cycle_events", [2 * 4, 4, "nan_idx", 8 * 4, 3, 2 * 4, 2 * 4, 2],
                                         [1, 4, 4, 8, 0, True, True, False]),
    # rows times items overflows: the rows read 2^62 items past an 8-item buffer
    "aggregate_add: rows times items overflow": ("aggregate_add", [8, 8, 8, 8, 8, 8, 8], [8, BIG]),
    "aggregate_add: a negative row count": ("aggregate_add", [8, 8, 8, 8, 8, 8, 8], [8, -1]),
    # bounds that do not tile the items: a value's items read and written past the sums and the output
    "aggregate_result: bounds that stop short of the items": ("aggregate_result", [5 * 4, 4, 3, 4], [4, 2]),
    "aggregate_result: a NaN bound": ("aggregate_result", [5 * 4, 4, "nan_idx", 4], [4, 3]),
    "aggregate_result: items times rows overflow": ("aggregate_result", [8, 8, 2, 8], [BIG, 1]),
    "rising_crossings: a buffer not aligned to 8 bytes": ("rising_crossings", ["misaligned", 8, 8, 8], [8, 0, 2]),
    # hi - lo formed before lo was checked: a signed overflow (undefined; UBSan reports it)
    "window_append: a negative first cycle": ("window_append", [8, 1, 8], [1, 4, 1, 1, 8, 1, -1, 2 ** 63 - 1, 0]),
    # an odd cycle has no two equal halves (the reference's reshape refuses it): half means of s // 2 and s // 2 + 1
    "cycle_stats: an odd number of samples a cycle": ("cycle_stats", [2 * 5 * 7, 49, 5, 5, 2 * 2 * 7, 14, 14, 0, 28],
                                                      [2, 5, 7, 7, 0, 0, 0]),
    "cycle_stats: one sample a cycle": ("cycle_stats", [7, 49, 1, 1, 2 * 7, 7, 7, 0, 14], [1, 1, 7, 7, 0, 0, 0]),
    "cycle_batch: an odd number of samples a cycle": ("cycle_batch", [14, 2, 2, 7, 77, 7, 7, 49, 4, 4, 4, 4, 88, 44,
                                                                      44, 12, 88],
                                                      [2, 7, 1, 7, 11, 0, 6, 3, 4, 0, 0.0, 32000.0, 42.5, 69.0]),
    # an array written while another that shares its memory is read ("alias N": the same array as argument N): the
    # kernel read what it had written (memcpy between the two undefined), the reference reads the inputs as given
    "track_block: the history is the input": ("track_block", [8, 1, 12, 4, 4, "alias 0", 5, 4, 11, 8, 8, 0],
                                              [8, 1, 2, 4, 8, 4, False, False]),
    "track_block: the copy is the input": ("track_block", [8, 1, 12, 4, 4, 4, 5, 4, 11, 8, 8, "alias 0"],
                                           [8, 1, 2, 4, 1, 4, False, True]),
    "flicker_squares: the carried rows are the input": ("flicker_squares", [32 * 7, 7 * 3, "alias 0", 3, 1],
                                                        [8, 7, 3, 32, 4, 1, 0.0, 1.0]),
    "block_squares: the output is the input": ("block_squares", [8 * 3, 9, "alias 0"], [8, 3, 3, 1]),
    "cycle_stats: the outputs are the input": ("cycle_stats", [2 * 8 * 7, 49, 8, 8, "alias 0", 14, 14, 0, 28],
                                               [2, 8, 7, 7, 0, 0, 0]),
    "cycle_batch: the samples are the buffer": ("cycle_batch", [2 * 8 * 7, 2, 2, 7, 77, 8, 8, "alias 0", 4, 4, 4,
                                                                4, 88, 44, 44, 12, 88],
                                                [16, 7, 1, 8, 11, 0, 6, 3, 4, 0, 0.0, 32000.0, 42.5, 69.0]),
    "window_append: the window is the samples": ("window_append", [64, 7, "alias 0"], [1, 8, 8, 7, 8, 8, 0, 1, 0]),
    "window_rfft: the lines are the window": ("window_rfft", [16 * 8, "alias 0"], [8, 16, 8, 8]),
    "half_cycle_events: the history is the Urms(1/2)": ("half_cycle_events", [2 * 4, 4, 1, 16, 3, "alias 3", 2, 2],
                                                        [1, 4, 1, 8, 0, True, True, False]),
    "half_cycle_rms: the Urms(1/2) are the half-cycle mean squares": ("half_cycle_rms", [2 * 4, 4, 1, "alias 0", 2],
                                                                      [1, 4, 1, True]),
    "event_screen: the candidates are the values": ("event_screen", [8 * 3, 3, "alias 0", 3], [8, 1, 3, 2, True]),
    "resample_cycles: the output is the buffer": ("resample_cycles", [64 * 2, 3, 2, "alias 0"], [64, 2, 2, 8, 0.0]),
    "track_crossings: the crossings are the filtered reference": ("track_crossings", [16, 4, 4, 11, "alias 0", 16],
                                                                  [16, 0, 2, 4]),
    "rising_crossings: the crossings are the filtered reference": ("rising_crossings", [16, "alias 0", 16, 16],
                                                                   [16, 0, 2]),
    "flicker_chain: the states are the samples": ("flicker_chain", [8 * 2 * 3, 8 * 6, "alias 0", 8 * 3],
                                                  [8, 8, 3, 1.0]),
    # every kernel refuses such a call in get_arrays, also those whose loops happen to read an input before they
    # write the output that shares it
    "sosfilt: the output is the input": ("sosfilt", [12, 8, 4, "alias 1"], [2, 8]),
    "harmonic_groups: the phases are the lines": ("harmonic_groups", [2 * 8, 1, 1, "alias 0"], [1, 8, 4, 2]),
}

_RUNNER = textwrap.dedent("""
    import json, sys
    import numpy as np
    from metrology._kernels import _ckernels

    def array(spec):
        if spec == "misaligned":
            return memoryview(bytearray(8 * 8 + 1))[1:].cast("d")     # numpy exports its own as "=d" (refused)
        if spec == "nan_idx":
            return np.array([np.nan, 0.0, 0.0, 0.0])
        if spec == "use_1":
            return np.array([1.0, 0.0, 0.0, 0.0])
        return np.zeros(spec)

    kernel, specs, scalars = json.loads(sys.argv[1])
    arrays = []
    for a in specs:
        arrays.append(arrays[int(a.split()[1])] if isinstance(a, str) and a.startswith("alias") else array(a))
    try:
        getattr(_ckernels, kernel)(*arrays, *scalars)
    except ValueError as exc:
        print("ValueError", exc)
    else:
        print("accepted")
""")


@pytest.mark.parametrize("case", sorted(HOSTILE_CALLS))
def test_kernels_refuse_sizes_that_overflow_or_do_not_fit_and_buffers_not_aligned(case):
    # each in a process of its own: a kernel that reads or writes past its buffers may take the process with it
    done = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(HOSTILE_CALLS[case])], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, f"the kernel crashed ({done.returncode}): {done.stderr[-500:]}"
    assert done.stdout.startswith("ValueError"), done.stdout


def test_window_rfft_of_no_rows_plans_nothing():
    # N is bounded by no buffer when there is no row: a plan of 2^61 points was sized past the address space
    out = np.zeros(0)
    assert _kernels._ckernels.window_rfft(np.zeros(0), out, 0, 2 ** 62, 0, 1) is True


def _nan_sample_inputs(c: int, s: int = 512) -> np.ndarray:
    x = np.random.default_rng(c).normal(size=(4, s, c)) * 300
    x[1, 100, c - 1] = np.nan           # an ADC glitch on the last input: an input of no signal in some wirings
    x[2, 400, 0] = np.nan
    x[3, 10, 1] = np.inf
    return x


@pytest.mark.parametrize("c, k, v0, i0, nvi", [
    (7, 11, 0, 6, 3),      # the board's inputs: every signal formed from every input in registers
    (5, 12, 4, 8, 4),      # the register form, each group from the inputs it weights
    (9, 11, 0, 6, 3),      # the block form
])
def test_cycle_stats_of_a_nan_or_infinite_sample_agrees_with_the_reference_peaks_included(c, k, v0, i0, nvi):
    from metrology.settings import SYSTEM_TYPES
    from metrology.systems import wiring

    rng = np.random.default_rng(k)
    x = _nan_sample_inputs(c)
    sparse = np.where(rng.uniform(size=(c, k)) < 0.4, rng.normal(size=(c, k)), 0.0)
    sparse[c - 1] = 0.0                 # the glitching input weighs in no signal: x @ matrix is NaN all the same
    matrices = [sparse] + ([wiring(t).matrix for t in SYSTEM_TYPES] if (c, k) == (7, 11) else [])
    for matrix in matrices:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = reference.cycle_stats(x, matrix, v0, i0, nvi)
        for name, a, b in zip(("half_ms", "ms", "peak", "vi", "fund"), _kernels.c_cycle_stats(x, matrix, v0, i0, nvi),
                              want):
            if name == "fund":          # numpy's complex product makes NaN of an infinite part: the finite agree
                np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b), err_msg=name)
                a, b = a[:3], b[:3]
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-8, err_msg=name)
        assert np.isnan(want[2][1:3]).all() and np.isfinite(want[2][0]).all()


def test_rising_crossings_peak_is_nan_where_the_half_cycle_before_has_a_nan_as_numpy_max():
    t = np.arange(8000) / 32000.0
    y = 300 * np.sin(2 * np.pi * 50 * t + 0.4)
    y[1000] = np.nan
    got, want = _kernels.c_rising_crossings(y, 0, 320), reference.rising_crossings(y, 0, 320)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[2], want[2])
    assert np.isnan(got[2]).sum() == 1


def test_resample_positions_past_the_integers_read_the_edge_rows_and_nan_positions_give_nan():
    buf = np.random.default_rng(3).normal(size=(3000, 7))
    for bounds, row in (([1000.0, 1e19, 2e19], -1), ([-2e19, -1e300, 1000.0], 0)):
        got = _kernels.c_resample_cycles(buf, np.array(bounds), 512, 17, np.zeros(7))
        np.testing.assert_allclose(got, reference.resample_cycles(buf, np.array(bounds), 512, 17, np.zeros(7)),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(got[1], np.broadcast_to(buf[row], (512, 7)))
    for bounds, delays in (([1000.0, np.nan, 2000.0], np.zeros(7)), ([1000.0, np.inf, 2000.0], np.zeros(7)),
                           ([1000.0, 1500.0, 2000.0], np.array([0, 0, 0, np.nan, 0, 0, -np.inf]))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = reference.resample_cycles(buf, np.array(bounds), 512, 17, delays)
        got = _kernels.c_resample_cycles(buf, np.array(bounds), 512, 17, delays)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_resample_with_a_delay_per_input_gives_nan_only_where_an_input_s_own_taps_read_a_nan_sample():
    # the inputs' taps as seven rows, each input's unused one weighted zero: zero times a NaN sample is NaN
    buf = np.random.default_rng(4).normal(size=(3000, 7))
    buf[1800, 3] = np.nan
    buf[2000, 0] = np.inf
    bounds = 1000.0 + np.cumsum(np.full(3, 533.37))
    delays = np.array([0.0, 0.5, 0.3, 0.7, 0.1, 0.9, 0.2])         # within a sample of each other
    got = _kernels.c_resample_cycles(buf, bounds, 512, 17, delays)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = reference.resample_cycles(buf, bounds, 512, 17, delays)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.isnan(want).sum() == 6 and np.isinf(want).sum() > 0


def _track_block_args(x: np.ndarray, kept: float):
    from metrology.frequency import CycleTracker

    tracker = CycleTracker(32000.0, 50.0, 30.0)
    params = tracker._params.copy()
    return (x, None, tracker.sos, np.zeros((2, 2)), np.zeros(tracker.tail_len), np.zeros(tracker.history_len),
            np.array([640.0, np.nan, 0.0, 1.0, kept]), tracker._delay_table, params)


def test_track_block_refuses_a_tail_count_outside_the_tail_as_the_reference():
    x = np.sin(np.arange(4000) * (2 * np.pi / 640))
    for kept in (np.nan, -1.0, 1e6, 1e300):
        for kernel in (_kernels.c_track_block, reference.track_block):
            with pytest.raises(ValueError):
                kernel(*_track_block_args(x, kept))


def test_track_block_of_nan_and_infinite_samples_agrees_with_the_reference():
    x = 300 * np.sin(np.arange(20000) * (2 * np.pi / 640))
    x[3000] = np.nan                   # the filter's output is NaN from there on: no crossing after it
    x[1000] = np.inf
    for kept in (0.0, 100.0):
        c_args, r_args = _track_block_args(x, kept), _track_block_args(x, kept)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = reference.track_block(*r_args)
        got = _kernels.c_track_block(*c_args)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        for a, b in zip(c_args[3:7], r_args[3:7]):
            np.testing.assert_array_equal(a, b)


_GUARD_PAGE_RUNNER = textwrap.dedent("""
    import ctypes, mmap, sys
    import numpy as np
    from metrology import _kernels
    from metrology.systems import wiring

    # one cycle of inputs (512 x 7 doubles: seven pages) ending where an unreadable page starts
    page = mmap.PAGESIZE
    size = 512 * 7 * 8
    pages = -(-size // page) + 1
    mem = mmap.mmap(-1, pages * page)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    assert libc.mprotect(base + (pages - 1) * page, page, 0) == 0
    x = np.frombuffer(mem, dtype=np.float64, count=512 * 7, offset=(pages - 1) * page - size).reshape(1, 512, 7)
    x[:] = np.random.default_rng(1).normal(size=(1, 512, 7))
    for system in ("4W-WYE", "3W-WYE", "DELTA", "SINGLE"):
        _kernels.c_cycle_stats(x, wiring(system).matrix, 0, 6, 3)
    print("done")
""")


def test_cycle_stats_reads_nothing_past_the_last_sample():
    # the register form reads three items past each row but the last (a copy of it): the last cycle's last row
    # at the end of a page, the page after it unreadable
    done = subprocess.run([sys.executable, "-c", _GUARD_PAGE_RUNNER], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"the kernel crashed ({done.returncode}): {done.stderr[-500:]}"
    assert done.stdout.strip() == "done"


def test_block_squares_and_flicker_squares_of_a_nan_in_an_input_a_signal_does_not_use_agree_with_the_reference():
    # the kernel leaves zero weights out: a NaN or infinite current sample leaves the voltages' squares finite,
    # where a product with every input (NaN times 0) made them NaN
    rng = np.random.default_rng(5)
    x = rng.standard_normal((96, 7))
    x[3, 4] = np.nan
    x[40, 5] = np.inf
    matrix = np.zeros((7, 3))
    matrix[0, 0] = matrix[1, 1] = matrix[2, 2] = 1.0
    matrix[4, 2] = 0.5
    ref = reference.block_squares(x, matrix, 32)
    assert np.isfinite(ref[:, :2]).all() and np.isnan(ref[0, 2])
    np.testing.assert_allclose(_kernels.c_block_squares(x, matrix, 32), ref, rtol=1e-13)
    carry_c, carry_r = np.zeros((32, 7)), np.zeros((32, 7))
    out_c, out_r, times = np.zeros((4, 3)), np.zeros((4, 3)), np.zeros(4)
    assert _kernels.c_flicker_squares(x[:50], matrix, carry_c, 0, 0.0, 1.0, out_c, times) == 1
    assert reference.flicker_squares(x[:50], matrix, carry_r, 0, 0.0, 1.0, out_r, times) == 1
    np.testing.assert_allclose(out_c, out_r, rtol=1e-13)


def test_track_block_and_sosfilt_of_a_nan_in_an_input_the_reference_does_not_use_agree_with_the_reference():
    # the kernels leave zero weights out: a NaN current sample leaves the tracker's filter finite, where x @ weights
    # (NaN times 0) left the reference's filter state NaN for good
    from metrology.frequency import CycleTracker

    tracker = CycleTracker(32000.0, 50.0, 30.0)
    t = np.arange(4096) / 32000.0
    x = np.zeros((4096, 7))
    for q, shift in enumerate((0.0, -2.1, 2.1)):
        x[:, q] = 300.0 * np.sin(2 * np.pi * 50.0 * t + shift)
    x[1000, 5] = np.nan
    w = np.array([1.0, -0.5, -0.5, 0.0, 0.0, 0.0, 0.0])
    args = [(x, w, tracker.sos, np.zeros((2, 2)), np.zeros(tracker.tail_len), np.zeros((tracker.history_len, 7)),
             np.array([640.0, np.nan, 0.0, 1.0, 0.0]), tracker._delay_table, tracker._params.copy()) for _ in "rc"]
    found_r, real_r = reference.track_block(*args[0])
    found_c, real_c = _kernels.c_track_block(*args[1])
    assert np.isfinite(args[0][3]).all()
    np.testing.assert_allclose(args[1][3], args[0][3], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(found_c, found_r, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(real_c, real_r)
    y_r, z_r = reference.sosfilt(tracker.sos, x, np.zeros((2, 2)), w)
    y_c, z_c = _kernels.c_sosfilt(tracker.sos, x, np.zeros((2, 2)), w)
    assert np.isfinite(y_r).all()
    np.testing.assert_allclose(y_c, y_r, rtol=1e-9, atol=1e-9)


def test_cycle_change_of_a_nan_in_an_input_a_signal_does_not_use_agrees_with_the_reference():
    # the kernel leaves zero weights out: the current's NaN sample is no NaN in the voltages' change nor in last
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 16, 7))
    x[1, 5, 4] = np.nan
    x[2, 7, 4] = np.inf
    x[2, 7, 0] = 50.0
    matrix = np.zeros((7, 3))
    matrix[0, 0] = matrix[1, 1] = matrix[2, 2] = 1.0
    prev = rng.standard_normal((16, 3))
    out_r, last_r = cycle_change_of(reference.cycle_change, x, matrix, prev)
    out_c, last_c = cycle_change_of(_kernels.c_cycle_change, x, matrix, prev)
    assert out_r[2] > 40.0 and np.isfinite(last_r).all()
    np.testing.assert_allclose(out_c, out_r, rtol=1e-13)
    np.testing.assert_allclose(last_c, last_r, rtol=1e-13)


def test_window_harmonics_of_an_input_with_nan_lines_agrees_with_the_reference():
    # the kernel leaves zero weights out: a current's NaN lines (a NaN sample in its window) leave the voltages' values
    from metrology.harmonics import HARMONIC_SIGNALS, N_ORDERS
    from metrology.systems import V_LN, wiring

    matrix = wiring("4W-WYE").matrix
    used = np.flatnonzero(np.any(matrix[:, :HARMONIC_SIGNALS] != 0, axis=1))
    fft_matrix = np.ascontiguousarray(matrix[used, :HARMONIC_SIGNALS].T)
    n = 10
    th = 2 * np.pi * np.arange(n * 512) / 512
    x = np.stack([325.0 * np.cos(th - k) + 0.05 * np.cos(5 * th) for k in range(7)], axis=1)
    _, ms, peak, _, _ = reference.cycle_stats(x.reshape(n, 512, 7), matrix, 0, 6, 3)
    lines = np.fft.rfft(x[:, used].T, axis=1)
    lines[0] = np.nan        # input 0, a current (signal 6 alone)
    args = (lines, fft_matrix, ms, peak, n, N_ORDERS, n * 512, 5.0, 6, None, np.zeros((0, 4)), np.zeros((0, 4)),
            V_LN.start)
    got, want = _kernels.c_window_harmonics(*args), reference.window_harmonics(*args)
    assert np.isfinite(want[1][:6]).all() and np.isnan(want[1][6]).all()
    for a, b in zip(got, want):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_the_window_kernels_refuse_an_out_that_shares_an_input_s_memory_or_has_too_few_items():
    """An ``out`` given to interval_values, window_harmonics or window_finish that overlaps an input would be read
    after it was written: the C kernels refuse it, as they refuse an out too small (the reference one of another
    shape)."""
    fund, v, absent, msv = np.ones(10, dtype=complex), np.full(3, 230.0), np.zeros(3), np.zeros((3, 0))
    flat = np.zeros(40)
    with pytest.raises(ValueError):
        _kernels.c_window_finish(fund, flat[0:3], absent, msv, 230.0, (flat[10:20], flat[2:14].reshape(4, 3), msv))
    for finish in (_kernels.c_window_finish, reference.window_finish):
        with pytest.raises(ValueError):
            finish(fund, v, absent, msv, 230.0, (flat[:10], flat[10:16].reshape(2, 3), np.zeros((3, 0))))
    ms = np.ones((12, 11))
    args = (ms, np.ones((12, 3)), np.ones((12, 11), dtype=complex), np.full(12, 1 / 60), np.full(12, 60.0),
            np.full(12, 1 / 12), np.ones(3), 0.0, False, np.eye(3, dtype=complex))
    with pytest.raises(ValueError):
        _kernels.c_interval_values(*args, ms.reshape(-1)[:reference.INTERVAL_SIZE])
    with pytest.raises(ValueError):
        _kernels.c_interval_values(*args, np.zeros(reference.INTERVAL_SIZE - 1))
