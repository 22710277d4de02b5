"""Kernels of the per-sample paths, in C where the build had a compiler, else their numpy references.

``BACKEND`` is ``"c"`` or ``"numpy"``; ``BACKEND_NOTE`` is the one line the metrology service logs
at start-up. ``use_reference`` switches to the numpy reference (the start-up check of
``firmware.extensions`` does, for an extension built from another version of its source). Every kernel here has the signature and result of its definition in ``reference.py``;
``tests/unit/test_metrology_kernels.py`` checks that the two agree.
"""
from __future__ import annotations

import numpy as np

from metrology._kernels import reference
from metrology.energy import EnergyIncrement     # imports nothing of the kernels
from metrology.settings import LossCompensation

try:
    from metrology._kernels import _ckernels  # type: ignore[attr-defined]
except ImportError as exc:  # no compiler at install time, or the extension is missing
    _ckernels = None
    _IMPORT_ERROR = str(exc)
else:
    _IMPORT_ERROR = ""

_COS_SIN: dict[int, tuple[np.ndarray, np.ndarray]] = {}
_ONE = np.ones(1)       # the weight of a reference given as one column
_EMPTY = np.zeros(0)    # an array argument a kernel does not read
_EMPTY = np.zeros(0)    # an optional output not asked for


def _f64(a: np.ndarray, _contiguous=np.ascontiguousarray, _float64=np.float64) -> np.ndarray:
    """``a`` as a C-contiguous float64 array (itself when it is one). Every kernel call passes its arrays through
    this: numpy's function and dtype are bound as defaults and the dtype passed by position, which numpy parses
    with less work than a keyword."""
    return _contiguous(a, _float64)


def c_resample_cycles(buf: np.ndarray, bounds: np.ndarray, spc: int, offset: float, delays: np.ndarray
                      ) -> np.ndarray:
    buf, bounds, delays = _f64(buf), _f64(bounds), _f64(delays)
    n, c = buf.shape
    ncyc = bounds.shape[0] - 1
    out = np.empty((ncyc, spc, c))
    _ckernels.resample_cycles(buf, bounds, delays, out, n, c, ncyc, spc, float(offset))
    return out


def _cos_sin(s: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of 2 pi j / s, j < s: the DFT bin 1 of an s-sample cycle."""
    if s not in _COS_SIN:
        theta = 2 * np.pi * np.arange(s) / s
        _COS_SIN[s] = (np.cos(theta), np.sin(theta))
    return _COS_SIN[s]


def c_cycle_stats(x: np.ndarray, matrix: np.ndarray, v0: int, i0: int, nvi: int):
    x, matrix = _f64(x), _f64(matrix)
    m, s, c = x.shape
    k = matrix.shape[1]
    cos, sin = _cos_sin(s)
    half_ms, ms, peak = np.empty((m, 2, k)), np.empty((m, k)), np.empty((m, k))
    vi, fund = np.empty((m, nvi)), np.empty((m, k), dtype=np.complex128)
    _ckernels.cycle_stats(x, matrix, cos, sin, half_ms, ms, peak, vi, fund.view(np.float64), m, s, c, k, v0, i0, nvi)
    return half_ms, ms, peak, vi, fund


def c_cycle_batch(buf: np.ndarray, bounds: np.ndarray, real: np.ndarray, spc: int, offset: float,
                  delays: np.ndarray, matrix: np.ndarray, v0: int, i0: int, nvi: int, fs: float, fmin: float,
                  fmax: float, samples: np.ndarray, columns: list[np.ndarray], row: int) -> None:
    # the arrays go to the kernel as they are (it refuses any that is not C-contiguous float64): the caller's own
    start, end, duration, freq, both, half_ms, ms, vi, fund, peak = columns
    n, c = buf.shape
    m = bounds.shape[0] - 1
    cos, sin = _cos_sin(spc)
    _ckernels.cycle_batch(buf, bounds, real, delays, matrix, cos, sin, samples, start, end, duration, freq, half_ms,
                          ms, peak, vi, fund.view(np.float64), n, c, m, spc, matrix.shape[1], v0, i0, nvi,
                          start.shape[0], row, float(offset), float(fs), float(fmin), float(fmax))
    np.logical_and(real[:-1], real[1:], out=both[row:row + m])


def c_sosfilt(sos: np.ndarray, x: np.ndarray, zi: np.ndarray, weights: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    sos, x = _f64(sos), _f64(x)
    zi = np.array(zi, dtype=np.float64, order="C")
    y = np.empty(x.shape[0])
    if weights is None:
        _ckernels.sosfilt(sos, x, zi, y, sos.shape[0], x.shape[0])
    else:
        _ckernels.sosfilt(sos, x, zi, y, sos.shape[0], x.shape[0], _f64(weights), x.shape[1])
    return y, zi


def c_harmonic_groups(lines: np.ndarray, n: int, orders: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lines = np.ascontiguousarray(lines, dtype=np.complex128)
    s, nl = lines.shape
    g2, inter2, phase = np.empty((s, orders - 1)), np.empty((s, orders - 1)), np.empty((s, orders))
    _ckernels.harmonic_groups(lines.view(np.float64), g2, inter2, phase, s, nl, n, orders)
    return g2, inter2, phase


def c_harmonic_values(lines: np.ndarray, n: int, orders: int, length: int, rms: np.ndarray, peak: np.ndarray,
                      tdd_current: float, tdd_from: int, h1_min: np.ndarray | None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    lines = np.ascontiguousarray(lines, dtype=np.complex128)
    s, nl = lines.shape
    mag, inter, angle = np.empty((s, orders)), np.empty((s, orders)), np.empty((s, orders))
    fund, ratio = np.empty(s, dtype=np.complex128), np.empty((7, s))
    floor = np.zeros(0) if h1_min is None else _f64(h1_min)
    _ckernels.harmonic_values(lines.view(np.float64), _f64(rms), _f64(peak), floor, mag, inter, angle,
                              fund.view(np.float64), ratio, s, nl, n, orders, float(length), float(tdd_current),
                              tdd_from, h1_min is not None)
    return mag, inter, angle, fund, ratio


def c_block_squares(x: np.ndarray, matrix: np.ndarray, d: int) -> np.ndarray:
    x, matrix = _f64(x), _f64(matrix)
    n, c = x.shape
    out = np.empty((n // d, matrix.shape[1]))
    _ckernels.block_squares(x, matrix, out, n, c, matrix.shape[1], d)
    return out


def c_flicker_squares(x: np.ndarray, matrix: np.ndarray, carry: np.ndarray, nc: int, t_first: float, step: float,
                      out: np.ndarray, times: np.ndarray) -> int:
    x = _f64(x)
    return _ckernels.flicker_squares(x, _f64(matrix), carry, out, times, x.shape[0], x.shape[1], matrix.shape[1],
                                     carry.shape[0], nc, out.shape[0], float(t_first), float(step))


def c_event_screen(u: np.ndarray, history: np.ndarray, n_rvc: int, params: np.ndarray, rvc_enabled: bool
                   ) -> tuple[bool, np.ndarray]:
    u, history = _f64(u), _f64(history)
    n, ch = u.shape
    cand = np.empty(n)
    maybe = _ckernels.event_screen(u, history, cand, params, n, history.shape[0], ch, n_rvc, rvc_enabled)
    return maybe, cand != 0


def c_flicker_chain(ms: np.ndarray, sos: np.ndarray, zi: np.ndarray, gain: float) -> tuple[np.ndarray, np.ndarray]:
    ms, sos = _f64(ms), _f64(sos)
    zf = np.array(zi, dtype=np.float64, order="C")
    n, ch = ms.shape
    y = np.empty((n, ch))
    _ckernels.flicker_chain(ms, sos, zf, y, n, sos.shape[0], ch, float(gain))
    return y, zf


def c_rising_crossings(y: np.ndarray, lo: int, half: int) -> tuple[list[int], list[float], list[float]]:
    y = _f64(y)
    n = y.shape[0]
    idx, root, peak = np.empty(n), np.empty(n), np.empty(n)
    count = _ckernels.rising_crossings(y, idx, root, peak, n, lo, half)
    return [int(k) for k in idx[:count].tolist()], root[:count].tolist(), peak[:count].tolist()


def c_track_crossings(y: np.ndarray, lo: int, half: int, state: np.ndarray, table: np.ndarray, params: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    y = _f64(y)
    n = y.shape[0]
    out_t, out_real = np.empty(n), np.empty(n)
    count = _ckernels.track_crossings(y, state, table, params, out_t, out_real, n, lo, half, table.shape[0])
    return out_t[:count], out_real[:count]


def c_track_block(x: np.ndarray, weights: np.ndarray | None, sos: np.ndarray, zi: np.ndarray, tail: np.ndarray,
                  hist: np.ndarray, state: np.ndarray, table: np.ndarray, params: np.ndarray,
                  rows: np.ndarray | None = None, out_t: np.ndarray | None = None,
                  out_real: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    x = _f64(x)
    n = x.shape[0]
    c = 1 if weights is None else x.shape[1]
    if out_t is None or out_real is None:
        out = np.empty((2, n))
        out_t, out_real = out[0], out[1]
    count = _ckernels.track_block(x, _ONE if weights is None else _f64(weights), sos, zi, tail, hist, state, table,
                                  params, out_t, out_real, _EMPTY if rows is None else rows, n, c, sos.shape[0],
                                  tail.shape[0], hist.shape[0], table.shape[0], weights is not None, rows is not None)
    return out_t[:count], out_real[:count]


def c_cycle_change(x: np.ndarray, matrix: np.ndarray, prev: np.ndarray | None, out: np.ndarray, last: np.ndarray
                   ) -> float:
    # the arrays go to the kernel as they are (it refuses any that is not C-contiguous float64): the caller's own
    m, s, c = x.shape
    return _ckernels.cycle_change(x, matrix, _EMPTY if prev is None else prev, out, last, m, s, c, matrix.shape[1],
                                  prev is not None)


def c_interval_values(ms: np.ndarray, vi: np.ndarray, fund: np.ndarray, duration_s: np.ndarray, freq: np.ndarray,
                      weights: np.ndarray, present: np.ndarray, creep_current: float, ieee: bool, seq: np.ndarray,
                      out: np.ndarray | None = None) -> np.ndarray:
    out = np.empty(reference.INTERVAL_SIZE) if out is None else out
    fund = np.ascontiguousarray(fund, dtype=np.complex128).view(np.float64)
    seq = np.ascontiguousarray(seq, dtype=np.complex128).view(np.float64)
    _ckernels.interval_values(_f64(ms), _f64(vi), fund, _f64(duration_s), _f64(freq), _f64(weights), _f64(present),
                              seq, out, ms.shape[0], float(creep_current), ieee)
    return out


_LOSS: list = [None, np.zeros(0)]      # the last LossCompensation (frozen) given to interval_energy and its array


def _loss_array(losses) -> np.ndarray:
    """The LossCompensation ``losses`` as interval_energy's (11,) argument; the same object gives the same array."""
    if _LOSS[0] is losses:
        return _LOSS[1]
    d, r = losses.delivered, losses.received
    loss = np.array([losses.va_rated, losses.v_cal, losses.i_cal, d.fe_w_pct, d.cu_w_pct, d.fe_var_pct, d.cu_var_pct,
                     r.fe_w_pct, r.cu_w_pct, r.fe_var_pct, r.cu_var_pct], dtype=np.float64)
    if type(losses) is LossCompensation:        # frozen: the same object keeps its values
        _LOSS[:] = losses, loss
    return loss


def c_interval_energy(ms: np.ndarray, vi: np.ndarray, fund: np.ndarray, duration_s: np.ndarray, present: np.ndarray,
                      creep_current: float, losses) -> np.ndarray:
    out = np.zeros((2, len(EnergyIncrement.quantities()), 4))
    loss = _loss_array(losses)
    fund = np.ascontiguousarray(fund, dtype=np.complex128).view(np.float64)
    _ckernels.interval_energy(_f64(ms), _f64(vi), fund, _f64(duration_s), _f64(present), loss, out, ms.shape[0],
                              float(creep_current), bool(losses.enabled))
    return out


def c_window_harmonics(lines: np.ndarray, matrix: np.ndarray, ms: np.ndarray, peak: np.ndarray, n: int, orders: int,
                       length: int, tdd_current: float, tdd_from: int, h1_min: np.ndarray | None, idx: np.ndarray,
                       use: np.ndarray, msv_row: int, out: tuple[np.ndarray, ...] | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    lines = np.ascontiguousarray(lines, dtype=np.complex128)
    ni, nl = lines.shape
    s, k, nk = matrix.shape[0], ms.shape[1], idx.shape[0]
    if out is None:
        mag, inter, angle, ratio = np.empty((s, orders)), np.empty((s, orders)), np.empty((s, orders)), np.empty((7, s))
    else:
        mag, inter, angle, ratio = out
    rms, fund, msv = np.empty(s), np.empty(s, dtype=np.complex128), np.empty((3, nk))
    floor = np.zeros(0) if h1_min is None else _f64(h1_min)
    _ckernels.window_harmonics(lines.view(np.float64), _f64(matrix), _f64(ms), _f64(peak), floor, _f64(idx), _f64(use),
                               rms, mag, inter, angle, fund.view(np.float64), ratio, msv, ni, nl, s, n, orders, k,
                               float(length), float(tdd_current), tdd_from, h1_min is not None, nk, msv_row)
    return rms, mag, inter, angle, fund, ratio, msv


def c_aggregate_add(x: np.ndarray, square: np.ndarray, total: np.ndarray, count: np.ndarray, peak: np.ndarray,
                    finite: np.ndarray, latest: np.ndarray) -> None:
    x = _f64(x)
    _ckernels.aggregate_add(x, _f64(square), total, count, peak, finite, latest, total.shape[0],
                            1 if x.ndim == 1 else x.shape[0])


def c_aggregate_result(sums: np.ndarray, kind: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    sums = _f64(sums)
    w = sums.shape[1]
    out = np.empty(w)
    _ckernels.aggregate_result(sums, _f64(kind), _f64(bounds), out, w, bounds.shape[0] - 1)
    return out


def c_cycle_times(start: np.ndarray, end: np.ndarray, origin_ns: int, ns_per_sample: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = start.shape[0]
    ns = np.empty(4 * m, np.int64)          # start_ns, end_ns and half_end_ns: views of one allocation
    _ckernels.cycle_times(_f64(start), _f64(end), ns, m, int(origin_ns), float(ns_per_sample))
    return ns[:m], ns[m:2 * m], ns[2 * m:]


def c_window_append(samples: np.ndarray, inputs: np.ndarray, win: np.ndarray, lo: int, hi: int, at: int) -> None:
    samples = _f64(samples)
    m, s, c = samples.shape
    _ckernels.window_append(samples, _f64(inputs), win, m, s, c, inputs.shape[0], win.shape[0], win.shape[1], lo, hi,
                            at)


def c_half_cycle_rms(half_ms: np.ndarray, prev: np.ndarray | None, channels: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    half_ms = _f64(half_ms)
    m, _, k = half_ms.shape
    urms, watched = np.empty((2 * m, k)), np.empty((2 * m, channels.shape[0]))
    before = np.zeros(0) if prev is None else _f64(prev)
    _ckernels.half_cycle_rms(half_ms, before, _f64(channels), urms, watched, m, k, channels.shape[0], prev is not None)
    return urms, watched


def c_half_cycle_events(half_ms: np.ndarray, prev: np.ndarray, has_prev: bool, channels: np.ndarray, hist: np.ndarray,
                        hist_n: int, params: np.ndarray, rvc_enabled: bool, is_open: bool, urms: np.ndarray,
                        watched: np.ndarray, cand: np.ndarray) -> int:
    # the arrays go to the kernel as they are (it refuses any that is not C-contiguous float64): the caller's own
    m, _, k = half_ms.shape
    n_rvc, nc = hist.shape
    return _ckernels.half_cycle_events(half_ms, prev, channels, hist, params, urms, watched, cand, m, k, nc, n_rvc,
                                       hist_n, has_prev, rvc_enabled, is_open)


def c_window_finish(fund: np.ndarray, v: np.ndarray, absent: np.ndarray, msv: np.ndarray, udin: float,
                    out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s, nc, nk = fund.shape[0], v.shape[0], msv.shape[1]
    angle, dev, msv_out = (np.empty(s), np.empty((4, nc)), np.empty((nc, nk))) if out is None else out
    _ckernels.window_finish(np.ascontiguousarray(fund, dtype=np.complex128).view(np.float64), _f64(v), _f64(absent),
                            _f64(msv), angle, dev, msv_out, s, nc, nk, float(udin))
    return angle, dev, msv_out


def c_window_rfft(x: np.ndarray, nl: int, ni: int) -> np.ndarray:
    x = _f64(x)
    n, w = x.shape
    out = np.empty((ni, nl), dtype=np.complex128)
    if not _ckernels.window_rfft(x, out.view(np.float64), ni, n, w, nl):     # a length with a factor above 5
        out[:] = reference.window_rfft(x, nl, ni)
    return out


# the kernels, each with its C version (c_NAME) and its reference (reference.NAME)
KERNELS = ("resample_cycles", "cycle_stats", "cycle_batch", "sosfilt", "harmonic_groups", "rising_crossings",
           "track_crossings", "track_block", "cycle_change", "harmonic_values", "block_squares", "flicker_squares",
           "event_screen", "flicker_chain", "interval_values",
           "interval_energy", "window_harmonics", "aggregate_add", "aggregate_result", "cycle_times",
           "window_append", "half_cycle_rms", "half_cycle_events", "window_finish", "window_rfft")


def _select(c: bool) -> None:
    for name in KERNELS:
        globals()[name] = globals()[f"c_{name}"] if c else getattr(reference, name)


resample_cycles, cycle_stats, sosfilt = reference.resample_cycles, reference.cycle_stats, reference.sosfilt
cycle_batch = reference.cycle_batch
harmonic_groups, rising_crossings = reference.harmonic_groups, reference.rising_crossings
track_crossings, cycle_change = reference.track_crossings, reference.cycle_change
track_block = reference.track_block
harmonic_values, block_squares = reference.harmonic_values, reference.block_squares
flicker_squares = reference.flicker_squares
event_screen, flicker_chain = reference.event_screen, reference.flicker_chain
interval_values, interval_energy = reference.interval_values, reference.interval_energy
window_harmonics, aggregate_add = reference.window_harmonics, reference.aggregate_add
aggregate_result = reference.aggregate_result
cycle_times, window_append = reference.cycle_times, reference.window_append
half_cycle_rms, window_finish = reference.half_cycle_rms, reference.window_finish
half_cycle_events = reference.half_cycle_events
window_rfft = reference.window_rfft
if _ckernels is not None:
    BACKEND = "c"
    BACKEND_NOTE = "metrology kernels: C (metrology._kernels._ckernels)"
    _select(True)
else:
    BACKEND = "numpy"
    BACKEND_NOTE = ("metrology kernels: numpy reference, the C extension is not built "
                    f"({_IMPORT_ERROR}); same results, lower throughput")


def use_reference(why: str) -> None:
    """Run on the numpy reference from now on (the C extension does not match its source: ``why``)."""
    global BACKEND, BACKEND_NOTE
    BACKEND = "numpy"
    BACKEND_NOTE = f"metrology kernels: numpy reference, the C extension is stale ({why}); same results, lower throughput"
    _select(False)


__all__ = ["BACKEND", "BACKEND_NOTE", "KERNELS", "reference", "use_reference", *KERNELS]
