"""numpy references of the C kernels: the definition each C kernel is tested against.

Each function here is the specification of the kernel of the same name in ``_kernels.c``; the
tests in ``tests/unit/test_metrology_kernels.py`` run both on the same inputs and compare.
"""
from __future__ import annotations

import numpy as np

# 6-point (5th-order) Lagrange interpolation: taps at floor(p) - 2 .. floor(p) + 3.
LAGRANGE_OFFSETS = np.arange(-2, 4)
LAGRANGE_TAPS = LAGRANGE_OFFSETS.size


def lagrange_weights(mu: np.ndarray) -> np.ndarray:
    """(M, 6) weights of the 6-point Lagrange interpolator at fractional positions ``mu`` in [0, 1)."""
    mu = np.asarray(mu, dtype=np.float64)[:, None]
    ks = LAGRANGE_OFFSETS.astype(np.float64)
    w = np.ones((mu.shape[0], LAGRANGE_TAPS))
    for j, k in enumerate(ks):
        for m in ks:
            if m != k:
                w[:, j] *= (mu[:, 0] - m) / (k - m)
    return w


def resample(buf: np.ndarray, pos: np.ndarray, delays: np.ndarray) -> np.ndarray:
    """Values of each column of ``buf`` (N, C) at fractional rows ``pos + delays[c]`` -> (M, C).

    Rows outside the buffer are clamped to its first or last row (only the first cycle after a
    restart reaches them).
    """
    buf = np.asarray(buf, dtype=np.float64)
    n, c = buf.shape
    out = np.empty((pos.shape[0], c))
    groups: dict[float, list[int]] = {}
    for ch in range(c):
        groups.setdefault(float(delays[ch]), []).append(ch)
    for delay, chans in groups.items():
        p = pos + delay
        base = np.floor(p)
        w = lagrange_weights(p - base)
        rows = np.clip(base, -8, n + 8).astype(np.int64)      # a row past int64 reads the first or last as well
        idx = np.clip(rows[:, None] + LAGRANGE_OFFSETS[None, :], 0, n - 1)
        sub = buf[:, chans]
        out[:, chans] = np.einsum("mt,mtc->mc", w, sub[idx])
    return out


def resample_cycles(buf: np.ndarray, bounds: np.ndarray, spc: int, offset: float, delays: np.ndarray) -> np.ndarray:
    """``resample`` at ``spc`` positions per cycle: position j of cycle k is
    ``bounds[k] + (bounds[k+1] - bounds[k]) * j / spc - offset`` -> (len(bounds) - 1, spc, C)."""
    start, end = bounds[:-1], bounds[1:]
    grid = np.arange(spc, dtype=np.float64) / spc
    pos = (start[:, None] + (end - start)[:, None] * grid[None, :]).reshape(-1) - offset
    return resample(buf, pos, delays).reshape(start.shape[0], spc, -1)


def cycle_stats(x: np.ndarray, matrix: np.ndarray, v0: int, i0: int, nvi: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per cycle of the derived signals ``y = x @ matrix`` (x: (m, S, C) inputs, matrix: (C, K)): the mean
    square of each half (m, 2, K) and of the cycle (m, K), peak |y| (m, K), the mean of y[v0+q] * y[i0+q]
    for q < nvi (m, nvi), and the RMS phasor of DFT bin 1 with a cosine reference, (m, K) complex."""
    y = x @ matrix
    m, s, k = y.shape
    half_ms = (y * y).reshape(m, 2, s // 2, k).sum(axis=2) / (s // 2)
    ms = (half_ms[:, 0] + half_ms[:, 1]) / 2
    peak = np.abs(y).max(axis=1)
    vi = np.einsum("msk,msk->mk", y[:, :, v0:v0 + nvi], y[:, :, i0:i0 + nvi]) / s
    theta = 2 * np.pi * np.arange(s) / s
    fre = np.einsum("msk,s->mk", y, np.cos(theta))
    fim = np.einsum("msk,s->mk", y, np.sin(theta))
    return half_ms, ms, peak, vi, (fre - 1j * fim) * (np.sqrt(2) / s)


def cycle_batch(buf: np.ndarray, bounds: np.ndarray, real: np.ndarray, spc: int, offset: float, delays: np.ndarray,
                matrix: np.ndarray, v0: int, i0: int, nvi: int, fs: float, fmin: float, fmax: float,
                samples: np.ndarray, columns: list[np.ndarray], row: int) -> None:
    """The resampler and the per-cycle stage of a batch in one pass, in place: ``resample_cycles`` of the cycles
    between ``bounds`` (m + 1,) into ``samples`` (m, spc, C), and into rows ``row .. row + m - 1`` of ``columns``
    (a cycle log's, in the order of the fields of metrology.cycle.CycleMeasures): each cycle's opening and closing
    boundary, its duration (end - start) / fs, its frequency 1 / duration (NaN unless within fmin .. fmax and both
    its boundaries are measured crossings, ``real`` (m + 1,) nonzero), whether they are (bool), and the
    ``cycle_stats`` of its samples."""
    m = bounds.shape[0] - 1
    samples[...] = resample_cycles(buf, bounds, spc, offset, delays)
    half_ms, ms, peak, vi, fund = cycle_stats(samples, matrix, v0, i0, nvi)
    start, end = bounds[:-1], bounds[1:]
    duration = (end - start) / fs
    freq = np.divide(1.0, duration)
    both = (real[:-1] != 0) & (real[1:] != 0)
    freq[~((freq >= fmin) & (freq <= fmax) & both)] = np.nan
    for column, v in zip(columns, (start, end, duration, freq, both, half_ms, ms, vi, fund, peak)):
        column[row:row + m] = v


def nonzero_terms(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``x @ matrix`` (x (n, C), matrix (C, K) or weights (C,)), each output the sum of the terms of the inputs with a
    nonzero weight in it only: in a row with a NaN or infinite sample, that sample's zero-weight terms (NaN) are left
    out (the other rows as x @ matrix)."""
    with np.errstate(invalid="ignore"):          # those NaN terms, replaced below
        y = x @ matrix
    cols = matrix.reshape(matrix.shape[0], -1)
    out = y.reshape(y.shape[0], cols.shape[1])
    for r in np.flatnonzero(~np.isfinite(x).all(axis=1)):
        for q in range(cols.shape[1]):
            used = np.flatnonzero(cols[:, q])
            out[r, q] = x[r, used] @ cols[used, q]
    return y


def sosfilt(sos: np.ndarray, x: np.ndarray, zi: np.ndarray, weights: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Cascade of biquads with state ``zi`` (n_sections, 2) on ``x`` (n,), or on ``x @ weights`` for
    ``x`` (n, c), the sum of the terms of the inputs with a nonzero weight only (a NaN sample of an input the
    reference does not use, a current's, leaves the filter alone): scipy.signal.sosfilt is the definition."""
    from scipy import signal

    return signal.sosfilt(sos, x if weights is None else nonzero_terms(x, weights), zi=zi)


def harmonic_groups(lines: np.ndarray, n: int, orders: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For DFT lines (S, >= orders * n) complex of an ``n``-cycle window (line h*n is harmonic h): sums of
    |X|^2 over each harmonic subgroup h*n-1 .. h*n+1 for h = 1 .. orders-1 (the centre line alone when
    n < 2), (S, orders-1); over each centred interharmonic subgroup h*n+2 .. h*n+n-2 for h = 0 .. orders-2
    (zero when n < 4), (S, orders-1); and the phase of each line h*n, (S, orders)."""
    s = lines.shape[0]
    c2 = (lines[:, :orders * n].real ** 2 + lines[:, :orders * n].imag ** 2).reshape(s, orders, n)
    g2 = c2[:, 1:, 0] + (c2[:, :-1, n - 1] + c2[:, 1:, 1]) if n >= 2 else c2[:, 1:, 0].copy()
    inter2 = c2[:, :-1, 2:n - 1].sum(axis=2) if n >= 4 else np.zeros((s, orders - 1))
    return g2, inter2, np.angle(lines[:, :orders * n:n])


def cubic_root(ym: float, y0: float, y1: float, y2: float) -> float:
    """Root in [0, 1] of the cubic through (-1, ym), (0, y0), (1, y1), (2, y2): three Newton steps from the
    linear estimate."""
    c1 = -ym / 3 - y0 / 2 + y1 - y2 / 6           # p(u) = y0 + c1 u + c2 u^2 + c3 u^3
    c2 = (ym + y1) / 2 - y0
    c3 = (y2 - ym) / 6 + (y0 - y1) / 2
    u = y0 / (y0 - y1)
    for _ in range(3):
        u -= (y0 + u * (c1 + u * (c2 + u * c3))) / (c1 + u * (2 * c2 + 3 * u * c3))
    return u


def rising_crossings(y: np.ndarray, lo: int, half: int) -> tuple[list[int], list[float], list[float]]:
    """Every k >= max(lo, 1) with y[k] < 0 <= y[k+1] and y[k+2] in range; for each, the root in [0, 1] of
    the cubic through y[k-1 .. k+2] and the peak |y| over y[max(k - half, 0) .. k]."""
    lo = max(lo, 1)
    cand = (np.flatnonzero((y[lo:-2] < 0) & (y[lo + 1:-1] >= 0)) + lo).tolist()
    absy = np.abs(y)
    roots = [cubic_root(*y[k - 1:k + 3].tolist()) for k in cand]
    peaks = [float(absy[max(k - half, 0):k + 1].max()) for k in cand]
    return cand, roots, peaks


def track_crossings(y: np.ndarray, lo: int, half: int, state: np.ndarray, table: np.ndarray, params: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The cycle tracker's pass over a block of its filtered reference ``y``: each crossing of
    ``rising_crossings(y, lo, half)`` becomes the time ``base + k + root - delay``, the filter's delay
    interpolated linearly in ``table`` (sampled every ``step`` Hz from ``f0``) at the tracked frequency
    ``fs / period``; crossings whose peak is below ``present`` or that come before ``settle`` (NaN: no such
    limit) are skipped, and the rest are judged against the last boundary: a crossing sooner than
    ``max(min_period, min_ratio * period)`` after a real one is noise (dropped); one whose period differs from
    the last by more than ``max_step`` (relative), unless reacquiring, or lies outside ``min_period ..
    max_period`` is kept but not real; after a virtual boundary a crossing sooner than ``after_virtual *
    period`` waits for the next, and a later one starts reacquiring. A real crossing's period becomes the
    tracked period.

    ``params`` (11,): base, f0, step, fs, present, settle, min_period, max_period, min_ratio, max_step,
    after_virtual. ``state`` (4,) is updated in place: period, last boundary (NaN: none), last_real,
    reacquiring (0/1). Returns the accepted boundaries' times and whether each is real (1.0/0.0)."""
    base, f0, step, fs, present, settle, min_period, max_period, min_ratio, max_step, after_virtual = \
        params.tolist()
    period, last, last_real, reacquiring = state.tolist()
    out_t: list[float] = []
    out_real: list[float] = []
    for k, root, peak in zip(*rising_crossings(y, lo, half)):
        kf = (fs / period - f0) / step
        i = min(max(int(kf), 0), table.shape[0] - 2)
        w = kf - i
        delay = float(table[i]) * (1 - w) + float(table[i + 1]) * w
        t = (base + k) + root - delay
        if peak < present or (not np.isnan(settle) and t < settle):
            continue
        real = 1.0
        if not np.isnan(last):
            delta = t - last
            if last_real:
                if delta < max(min_period, min_ratio * period):
                    continue                              # noise: a second crossing in one cycle
                plausible = abs(delta / period - 1) <= max_step
                if (plausible or reacquiring) and min_period <= delta <= max_period:
                    period, reacquiring = delta, 0.0
                else:
                    real = 0.0       # a step no power system makes (the voltage just vanished):
                                     # keep the boundary, do not trust the frequency around it
            else:
                if delta < after_virtual * period:
                    continue
                reacquiring = 1.0
        last, last_real = t, real
        out_t.append(t)
        out_real.append(real)
    state[:] = (period, last, last_real, reacquiring)
    return np.asarray(out_t, dtype=np.float64), np.asarray(out_real, dtype=np.float64)


def track_block(x: np.ndarray, weights: np.ndarray | None, sos: np.ndarray, zi: np.ndarray, tail: np.ndarray,
                hist: np.ndarray, state: np.ndarray, table: np.ndarray, params: np.ndarray,
                rows: np.ndarray | None = None, out_t: np.ndarray | None = None, out_real: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """The cycle tracker's usual pass over a block: its reference (``x`` (n,), or ``x`` (n, c) @ ``weights``) through
    the filter ``sos`` from the states ``zi``, after the last ``state[4]`` filtered samples of the blocks before,
    which ``tail`` (tl,) keeps right-aligned; then ``track_crossings`` over the two from two samples before the block
    (index 1 when fewer are kept), with ``half`` floor(period / 2) (0 for a NaN period, at most the samples there
    are) and the base ``params[0]`` (the index of x's first row) minus the samples kept. In place: ``zi``, ``state``
    (track_crossings' four, then how many filtered samples the tail holds), ``tail`` (the last tl filtered samples,
    right-aligned), ``hist`` (hl,) or (hl, c) the last hl rows of ``x`` when it has that many (else unchanged), and
    ``rows`` (n, c), when given, a copy of ``x`` (the resampler's store). Returns track_crossings' result; with
    ``out_t`` and ``out_real`` (at least n items each) written at their start and returned as views of them."""
    kept = float(state[4])
    if not 0 <= kept <= tail.shape[0]:
        raise ValueError("track_block: the tail count is not within the tail")
    t = int(kept)
    y, zf = sosfilt(sos, x, zi, weights)
    zi[:] = zf
    yy = np.concatenate((tail[tail.shape[0] - t:], y))
    p = params.copy()
    p[0] -= t
    st = state[:4].copy()
    hp = st[0] // 2
    half = int(min(hp, yy.shape[0])) if hp >= 0 else 0
    found, real = track_crossings(yy, max(t - 2, 1), half, st, table, p)
    state[:4] = st
    keep = min(tail.shape[0], yy.shape[0])
    if keep:
        tail[tail.shape[0] - keep:] = yy[yy.shape[0] - keep:]
    state[4] = keep
    if x.shape[0] >= hist.shape[0] and hist.shape[0]:
        hist[:] = x[x.shape[0] - hist.shape[0]:]
    if rows is not None:
        rows[:x.shape[0]] = x.reshape(x.shape[0], -1)
    if out_t is not None and out_real is not None:
        count = found.shape[0]
        out_t[:count], out_real[:count] = found, real
        return out_t[:count], out_real[:count]
    return found, real


def cycle_change(x: np.ndarray, matrix: np.ndarray, prev: np.ndarray | None, out: np.ndarray, last: np.ndarray
                 ) -> float:
    """For each cycle j of ``y = x @ matrix`` (x: (m, S, C) inputs, matrix (C, K)), the largest |y[j] - y[j-1]|
    over its samples and signals into ``out`` (m,); y[-1] is ``prev``, or with None cycle 0 gives 0. NaN
    differences count as 0. ``last`` (K, S) gets the last cycle's y signal by signal (``prev`` when m is 0, zeros
    without it), as ``prev`` (K, S) is given: a call's ``last`` is the next one's ``prev``. Returns the largest
    value of ``out`` (0 when m is 0). Each signal the sum of its nonzero-weight inputs' terms (nonzero_terms)."""
    y = nonzero_terms(x.reshape(-1, x.shape[2]), matrix).reshape(x.shape[0], x.shape[1], matrix.shape[1])
    if y.shape[0] == 0:
        last[:] = 0.0 if prev is None else prev
        return 0.0
    before = np.concatenate((y[:1] if prev is None else prev.T[None], y[:-1]))
    d = np.abs(y - before)
    out[:] = np.where(np.isnan(d), 0.0, d).max(axis=(1, 2), initial=0.0)
    last[:] = y[-1].T
    return float(out.max())


def harmonic_values(lines: np.ndarray, n: int, orders: int, length: int, rms: np.ndarray, peak: np.ndarray,
                    tdd_current: float, tdd_from: int, h1_min: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The harmonic values of an ``n``-cycle window of ``length`` samples from its DFT lines (S, >= orders * n):
    RMS of each harmonic subgroup (S, orders), [:, 0] the DC line; of each centred interharmonic subgroup (S,
    orders), NaN when n < 4 and in the last column; each harmonic line's angle (S, orders), degrees in
    [-180, 180) relative to signal 0's fundamental (times the order); the fundamental phasors (S,) complex RMS;
    and (7, S): THD (%, harmonic content over H1), THD over the RMS ``rms``, odd and even THD (% of H1), crest
    factor (``peak`` over ``rms``), K-factor, TDD (% of ``tdd_current``, signals ``tdd_from``.. only, NaN
    elsewhere or when it is 0). A ratio whose denominator is not positive is NaN, as are THD, odd and even THD
    of a signal whose H1 is below ``h1_min`` (None: no floor)."""
    g2, inter2, phase = harmonic_groups(lines, n, orders)
    s = lines.shape[0]
    line_ms = 2.0 / (length * length)                 # |X|^2 -> squared RMS of a line
    g2 *= line_ms
    mag = np.empty((s, orders))
    mag[:, 0] = np.abs(lines[:, 0]) / length
    np.sqrt(g2, out=mag[:, 1:])
    inter = np.full((s, orders), np.nan)
    if n >= 4:
        inter2 *= line_ms
        np.sqrt(inter2, out=inter[:, :orders - 1])
    angle = np.degrees(phase - np.arange(orders, dtype=np.float64) * phase[0, 1])
    angle += 180.0
    angle %= 360.0
    angle -= 180.0
    fund = lines[:, n] * (np.sqrt(2) / length)
    hc2 = g2[:, 1:].sum(axis=1)                       # orders 2 and up
    h1 = mag[:, 1]
    num = np.array((hc2, hc2, g2[:, 2::2].sum(axis=1), g2[:, 1::2].sum(axis=1)))
    np.sqrt(num, out=num)
    num *= 100.0
    num = np.concatenate((num, peak[None, :s], (g2 @ np.arange(1, orders, dtype=np.float64) ** 2)[None]))
    den = np.array((h1, rms, h1, h1, rms, g2.sum(axis=1)))
    ratio = np.full((7, s), np.nan)
    usable = den > 0
    if h1_min is not None:
        usable[(0, 2, 3), :] &= h1 >= h1_min
    np.divide(num, den, out=ratio[:6], where=usable)
    if tdd_current > 0:
        ratio[6, tdd_from:] = num[0, tdd_from:] / tdd_current
    return mag, inter, angle, fund, ratio


def block_squares(x: np.ndarray, matrix: np.ndarray, d: int) -> np.ndarray:
    """The mean over each run of ``d`` rows of the squares of ``y = x @ matrix`` (x: (n, C), matrix (C, K)):
    (n // d, K); rows past the last whole run are left out. Each y[:, q] is the sum of the terms of the inputs with
    a nonzero weight in matrix[:, q] only: a NaN or infinite sample of an input a signal does not use (a current's,
    for a voltage) leaves that signal alone."""
    runs = nonzero_terms(x[:x.shape[0] // d * d], matrix).reshape(-1, d, matrix.shape[1])
    return np.einsum("ijk,ijk->ik", runs, runs) / d


def flicker_squares(x: np.ndarray, matrix: np.ndarray, carry: np.ndarray, nc: int, t_first: float, step: float,
                    out: np.ndarray, times: np.ndarray) -> int:
    """``block_squares`` of the rows ``carry[:nc]`` then ``x`` (n, C), d = ``carry.shape[0]`` (nc < d): the count =
    (nc + n) // d runs into ``out[:count]`` (rows of K) and the time of each, ``(j + 0.5) * step + t_first``, into
    ``times[:count]``; the rows past the last whole run into ``carry`` (the next call's first ones). Returns the
    count; a ValueError when ``out`` or ``times`` has fewer rows."""
    d = carry.shape[0]
    if not 0 <= nc < d:
        raise ValueError("flicker_squares: carried rows not fewer than a run")
    v = np.concatenate((carry[:nc], x))
    count = v.shape[0] // d
    if count > min(out.shape[0], times.shape[0]):
        raise ValueError("flicker_squares: the output has fewer rows than the runs")
    out[:count] = block_squares(v, matrix, d)
    t = np.arange(0.5, count)
    t *= step
    t += t_first
    times[:count] = t
    rest = v.shape[0] - count * d
    carry[:rest] = v[count * d:]
    return count


def event_screen(u: np.ndarray, history: np.ndarray, n_rvc: int, params: np.ndarray, rvc_enabled: bool
                 ) -> tuple[bool, np.ndarray]:
    """The voltage events' screen of a batch of Urms(1/2) values ``u`` (n, channels) after ``history`` (h, channels)
    the values before them; ``params``: dip, swell and RVC thresholds (V). Returns whether some row's least value
    is below dip or its greatest above swell (a row with a NaN has neither), and per row (bool) whether it differs
    from the mean of the ``n_rvc`` rows before it by more than the RVC threshold in some channel (never with a
    NaN, nor before ``n_rvc`` rows are known; all False unless ``rvc_enabled``)."""
    dip, swell, thr = params.tolist()[:3]
    maybe = bool(((u.min(axis=1) < dip) | (u.max(axis=1) > swell)).any())
    h = history.shape[0]
    full = np.concatenate((history, u)) if h else u
    if not rvc_enabled or full.shape[0] <= n_rvc:
        return maybe, np.zeros(u.shape[0], dtype=bool)
    c = np.concatenate((np.zeros((1, full.shape[1])), np.cumsum(full, axis=0)))
    idx = np.arange(h, full.shape[0])
    ok = idx >= n_rvc
    mean = (c[np.maximum(idx, n_rvc)] - c[np.maximum(idx, n_rvc) - n_rvc]) / n_rvc
    dev = np.abs(full[idx] - mean).max(axis=1)
    return maybe, ok & (dev > thr)


def flicker_chain(ms: np.ndarray, sos: np.ndarray, zi: np.ndarray, gain: float) -> tuple[np.ndarray, np.ndarray]:
    """Blocks 3 and 4 of the flickermeter on its decimated mean squares ``ms`` (n, channels): ``sos`` row 0 is
    the block 1 reference (a low-pass of ``ms``), rows 1 .. -2 the band-pass and weighting on ``ms``, whose output
    is divided by the reference (0 where the reference is not positive) and squared, the last row the smoothing;
    returns that times ``gain`` (n, channels) and the sections' final states (like ``zi``: (sections, 2,
    channels)), each section run as ``sosfilt``."""
    y = np.empty(ms.shape)
    zf = np.empty(zi.shape)
    last = sos.shape[0] - 1
    for c in range(ms.shape[1]):
        x = np.ascontiguousarray(ms[:, c])
        ref, zf[:1, :, c] = sosfilt(sos[:1], x, zi[:1, :, c])
        v, zf[1:last, :, c] = sosfilt(sos[1:last], x, zi[1:last, :, c])
        v = v / np.where(ref > 0, ref, np.inf)
        v = v * v
        out, zf[last:, :, c] = sosfilt(sos[last:], v, zi[last:, :, c])
        y[:, c] = out * gain
    return y, zf


# the values of an interval as interval_values returns them, one flat (INTERVAL_SIZE,) array: name and length,
# in this order (signals as metrology.systems.SIGNALS: va vb vc vab vbc vca ia ib ic in ires)
INTERVAL_VALUES = (("v_ln", 3), ("v_ll", 3), ("i", 3), ("i_n", 1), ("i_res", 1), ("p", 4), ("q", 4), ("s", 4),
                   ("s_vect", 4), ("pf", 4), ("dpf", 4), ("quadrant", 4), ("p1", 4), ("freq", 1), ("v_seq", 3),
                   ("i_seq", 3), ("v_u0", 1), ("v_u2", 1), ("i_u0", 1), ("i_u2", 1), ("v_unbal", 1),
                   ("v_ll_unbal", 1), ("i_unbal", 1))
INTERVAL_SIZE = sum(size for _, size in INTERVAL_VALUES)


def interval_values(ms: np.ndarray, vi: np.ndarray, fund: np.ndarray, duration_s: np.ndarray, freq: np.ndarray,
                    weights: np.ndarray, present: np.ndarray, creep_current: float, ieee: bool, seq: np.ndarray,
                    out: np.ndarray | None = None) -> np.ndarray:
    """The values of the interval made of m cycles (``ms`` (m, 11), ``vi`` (m, 3), ``fund`` (m, 11) complex,
    ``duration_s`` and ``freq`` (m,)) with the given weights (sum 1), as one flat array in ``INTERVAL_VALUES``
    order: RMS of the weighted mean squares, the phases' and total power (metrology.power.interval_power: creep,
    PF by the IEEE convention or else IEC, quadrants), frequency (valid cycles over their duration), symmetrical
    components of the weighted fundamentals (``seq`` (3, 3): (zero, positive, negative) = (a, b, c) @ seq) and
    their u0/u2 in % (NaN unless all three phases are present), and the max-deviation unbalances in %. Written
    in ``out`` (INTERVAL_SIZE,) and returned when it is given."""
    from metrology.power import interval_power     # power imports nothing of the kernels: no cycle

    w = np.asarray(weights, dtype=np.float64)
    pres = np.asarray(present, dtype=bool).tolist()
    m = (w @ ms).tolist()
    s1 = w @ (fund[:, 0:3] * np.conj(fund[:, 6:9]))
    pw = interval_power(m[0:3], m[6:9], (w @ vi).tolist(), s1.tolist(), pres, creep_current,
                        "IEEE" if ieee else "IEC")
    valid = ~np.isnan(freq)
    n_valid = int(np.count_nonzero(valid))
    f = n_valid / float(duration_s[valid].sum()) if n_valid else np.nan
    rms = np.sqrt(np.asarray(m))
    comp = np.abs((w @ fund)[[[0, 1, 2], [6, 7, 8]]] @ seq).tolist()     # (V, I) x (zero, positive, negative)
    u = [100 * c[k] / c[1] if all(pres) and c[1] > 0 else np.nan for c in comp for k in (0, 2)]
    lines = [pres[0] and pres[1], pres[1] and pres[2], pres[2] and pres[0]]
    r = rms.tolist()
    unbal = [_unbalance(r[0:3], pres), _unbalance(r[3:6], lines), _unbalance(r[6:9], pres)]
    assert pw.quadrant is not None and pw.pf is not None and pw.dpf is not None
    values = np.concatenate((rms, pw.p, pw.q, pw.s_arith, pw.s_vect, pw.pf, pw.dpf, pw.quadrant, pw.p1, [f],
                             comp[0], comp[1], u, unbal)).astype(np.float64)
    return values if out is None else _written(out, values)


def _written(out: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` copied into the caller's ``out`` of their shape (as the kernels write it), which is returned."""
    if out.shape != values.shape:
        raise ValueError(f"out has shape {out.shape}, needs {values.shape}")
    out[...] = values
    return out


def _unbalance(x: list[float], present: list[bool]) -> float:
    """Max-deviation unbalance of the present values in %, NaN with fewer than two or a mean not positive."""
    v = [a for a, ok in zip(x, present) if ok]
    if len(v) < 2:
        return np.nan
    avg = sum(v) / len(v)
    return 100 * max(abs(a - avg) for a in v) / avg if avg > 0 else np.nan


def interval_energy(ms: np.ndarray, vi: np.ndarray, fund: np.ndarray, duration_s: np.ndarray, present: np.ndarray,
                    creep_current: float, losses) -> np.ndarray:
    """(2, Q, 4) energy of m cycles (``ms`` (m, 11), ``vi`` (m, 3), ``fund`` (m, 11) complex, ``duration_s``
    (m,)): row 0 the quantities of ``metrology.energy.EnergyIncrement.quantities()`` (phases a, b, c, total), by
    ``compute_power`` (creep) and ``cycle_energy``; row 1 the same with ``losses``
    (metrology.settings.LossCompensation, ``loss_power``) added to W and var, zeros when it is not enabled."""
    from metrology.energy import EnergyIncrement, cycle_energy, loss_power    # neither imports the kernels
    from metrology.power import compute_power

    present = np.asarray(present, dtype=bool)
    names = EnergyIncrement.quantities()
    out = np.zeros((2, len(names), 4))
    s1 = fund[:, 0:3] * np.conj(fund[:, 6:9])
    v_ms, i_ms = ms[:, 0:3], ms[:, 6:9]
    pw = compute_power(v_ms, i_ms, vi, s1, present, creep_current, "IEEE", factors=False)
    live = present & (np.sqrt(i_ms) >= creep_current)
    energy = cycle_energy(pw, v_ms, i_ms, live, duration_s)
    out[0] = [getattr(energy, name) for name in names]
    if losses.enabled:
        w_loss, var_loss = loss_power(v_ms, i_ms, pw.p[:, :3] >= 0, present, losses)
        vi_c = np.where(live, vi, 0.0) + w_loss
        s1_c = np.where(live, s1, 0.0) + 1j * var_loss
        pw_c = compute_power(v_ms, i_ms, vi_c, s1_c, present, 0.0, "IEEE", factors=False)
        comp = cycle_energy(pw_c, v_ms, i_ms, live, duration_s, compensated=True)
        out[1] = [getattr(comp, name) for name in names]
    return out


def window_harmonics(lines: np.ndarray, matrix: np.ndarray, ms: np.ndarray, peak: np.ndarray, n: int, orders: int,
                     length: int, tdd_current: float, tdd_from: int, h1_min: np.ndarray | None, idx: np.ndarray,
                     use: np.ndarray, msv_row: int, out: tuple[np.ndarray, ...] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every spectral value of an ``n``-cycle window of ``length`` samples from the DFT lines of its inputs
    (``lines`` (I, >= orders * n) complex): the S derived signals' lines ``matrix`` (S, I) times the inputs' first
    orders * n, their RMS and peak (S,) over the window from its cycles' mean squares ``ms`` and peaks ``peak``
    (n, >= S), then ``harmonic_values`` of them, and the mains signalling voltage (3, k) of signals ``msv_row`` ..
    ``msv_row`` + 2 at the k frequencies whose lines ``idx`` (k, 4) count where ``use`` (k, 4): V r.m.s.
    Returns (rms, mag, inter, angle, fund, ratio, msv); mag, inter, angle and ratio written in ``out`` (those four
    arrays) when it is given."""
    s = matrix.shape[0]
    spec = matrix @ lines[:, :orders * n]
    for j in np.flatnonzero(~np.isfinite(lines[:, :orders * n]).all(axis=0)):   # an unused input's NaN: no term
        for q in range(s):
            used = np.flatnonzero(matrix[q])
            spec[q, j] = matrix[q, used] @ lines[used, j]
    rms = np.sqrt(ms[:, :s].mean(axis=0))
    top = peak[:, :s].max(axis=0)
    mag, inter, angle, fund, ratio = harmonic_values(spec, n, orders, length, rms, top, tdd_current, tdd_from, h1_min)
    rows = spec[msv_row:msv_row + 3]
    idx = np.asarray(idx, dtype=np.intp)
    power = rows[:, idx].real ** 2 + rows[:, idx].imag ** 2              # (3, k, 4) |X|²
    msv = np.sqrt((power * np.asarray(use, dtype=bool)).sum(axis=2) * (2.0 / (length * length)))
    if out is not None:
        mag, inter, angle, ratio = (_written(a, b) for a, b in zip(out, (mag, inter, angle, ratio), strict=True))
    return rms, mag, inter, angle, fund, ratio, msv


def aggregate_add(x: np.ndarray, square: np.ndarray, total: np.ndarray, count: np.ndarray, peak: np.ndarray,
                  finite: np.ndarray, latest: np.ndarray) -> None:
    """The values ``x`` (w,) of one interval, or (rows, w) of several one after the other, into the running sums
    (w,) of an aggregation, in place: x, squared where ``square`` is 1, to ``total`` and ``count`` where not NaN;
    ``peak`` the greater of it and x ignoring NaN; ``finite`` 1 where x is finite; ``latest`` x."""
    x = np.asarray(x)
    for row in (x[None] if x.ndim == 1 else x):
        y = np.where(square != 0, row * row, row)
        valid = ~np.isnan(y)
        total += np.where(valid, y, 0.0)
        count += valid
        np.fmax(peak, row, out=peak)
        finite[np.isfinite(row)] = 1.0
        latest[:] = row


def aggregate_result(sums: np.ndarray, kind: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The values (w,) of an aggregation from its running sums ``sums`` (5, w) (rows: total, count, peak, finite,
    latest, as ``aggregate_add`` keeps them): a value (the items ``bounds[k]`` .. ``bounds[k + 1]`` - 1; the bounds
    go from 0 to w) with no finite item keeps its latest; else each item by its ``kind``, 1: the square root of the
    mean total / count (NaN with no count), 2: the mean, 3: the peak, else the latest."""
    total, count, peak, finite, latest = sums
    w = latest.shape[0]
    bounds = np.asarray(bounds, dtype=np.float64)
    if not (bounds[0] == 0 and bounds[-1] == w and (np.diff(bounds) >= 0).all() and (bounds == np.floor(bounds)).all()):
        raise ValueError("aggregate_result: the values' bounds do not tile the items")
    edges = bounds.astype(np.intp)
    seen = np.concatenate(([0], np.cumsum(finite != 0)))
    take = np.repeat(seen[edges[1:]] > seen[edges[:-1]], np.diff(edges))
    mean = np.full(w, np.nan)
    np.divide(total, count, out=mean, where=count > 0)
    out = latest.copy()
    np.sqrt(mean, out=out, where=take & (kind == 1))
    np.copyto(out, mean, where=take & (kind == 2))
    np.copyto(out, peak, where=take & (kind == 3))
    return out


def cycle_times(start: np.ndarray, end: np.ndarray, origin_ns: int, ns_per_sample: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clock times of cycles from their boundaries ``start``, ``end`` (m,) (fractional sample indices): each index
    times ``ns_per_sample`` rounded half to even, plus ``origin_ns``. Returns (start_ns, end_ns, half_end_ns):
    half_end_ns (2m,) the times of ``half_ends``."""
    start_ns = origin_ns + np.round(start * ns_per_sample).astype(np.int64)
    end_ns = origin_ns + np.round(end * ns_per_sample).astype(np.int64)
    half_end_ns = origin_ns + np.round(half_ends(start, end) * ns_per_sample).astype(np.int64)
    return start_ns, end_ns, half_end_ns


def half_ends(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """(2m,) the sample index where each half cycle of the cycles ``start``..``end`` (m,) ends: the middle of its
    cycle, then the cycle's end."""
    return np.stack(((start + end) / 2, end), axis=1).reshape(-1)


def window_append(samples: np.ndarray, inputs: np.ndarray, win: np.ndarray, lo: int, hi: int, at: int) -> None:
    """Cycles ``lo`` .. ``hi``-1 of the resampled inputs ``samples`` (m, S, C) into the rows of a window ``win``
    (width, >= I) from row ``at`` on, column t the input ``inputs[t]`` (the columns from I on untouched), in place."""
    x = samples[lo:hi][:, :, np.asarray(inputs, dtype=np.intp)]
    win[at:at + (hi - lo) * samples.shape[1], :x.shape[2]] = x.reshape(-1, x.shape[2])


def half_cycle_rms(half_ms: np.ndarray, prev: np.ndarray | None, channels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Urms(1/2) (2m, K) of m cycles from their half-cycle mean squares ``half_ms`` (m, 2, K): the RMS over one
    cycle refreshed every half cycle, each value its half and the half before it (``prev`` (K,) the one before
    the first; None: the first half alone), and its columns ``channels`` (2m, len(channels))."""
    m = half_ms.shape[0]
    halves = half_ms.reshape(2 * m, -1)
    before = halves[:1] if prev is None else prev[None, :]
    urms = np.sqrt((np.concatenate((before, halves[:-1])) + halves) / 2)
    return urms, urms[:, np.asarray(channels, dtype=np.intp)]


def half_cycle_events(half_ms: np.ndarray, prev: np.ndarray, has_prev: bool, channels: np.ndarray, hist: np.ndarray,
                      hist_n: int, params: np.ndarray, rvc_enabled: bool, is_open: bool, urms: np.ndarray,
                      watched: np.ndarray, cand: np.ndarray) -> int:
    """A batch's Urms(1/2) and the voltage events' screen in one pass: ``half_cycle_rms`` of ``half_ms`` (m, 2, K)
    after ``prev`` (K,) (the half before the first, when ``has_prev``) into ``urms`` (2m, K) and its ``channels``
    columns into ``watched`` (2m, channels), then ``event_screen`` of those after the last ``hist_n`` rows of
    ``hist`` (n_rvc, channels) (right-aligned: its rows n_rvc - hist_n ..) with the thresholds ``params``, its RVC
    candidates into ``cand`` (2m,) as 1.0 (else 0.0). ``prev`` becomes the batch's last half (in place). Returns the
    history's new row count when the batch is quiet (no event open per ``is_open``, no value beyond dip or swell, no
    RVC candidate: its watched rows then join ``hist`` in place, its last n_rvc rows kept), else -1 (``hist`` as it
    was: the values need looking at one by one)."""
    n_rvc = hist.shape[0]
    urms[:], watched[:] = half_cycle_rms(half_ms, prev.copy() if has_prev else None, channels)
    prev[:] = half_ms[-1, 1]
    maybe, rvc = event_screen(watched, hist[n_rvc - hist_n:], n_rvc, params, rvc_enabled)
    cand[:] = rvc
    if is_open or maybe or rvc.any():
        return -1
    rows = np.concatenate((hist[n_rvc - hist_n:], watched))[-n_rvc:]
    hist[n_rvc - rows.shape[0]:] = rows
    return int(rows.shape[0])


def window_finish(fund: np.ndarray, v: np.ndarray, absent: np.ndarray, msv: np.ndarray, udin: float,
                  out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The last values of a window from its spectral and interval values: ``angle`` (S,) the angle of each signal's
    fundamental ``fund`` (S,) complex from the first's, degrees in [-180, 180); ``dev`` (4, C) the clipped voltages
    and their deviations (``deviation.window_values``, in the order of ``deviation.WINDOW_KEYS``) of ``v + absent``
    (C,), where ``absent`` is 0, or NaN for a channel the system lacks; and ``msv`` (C, k) plus ``absent`` per
    channel. Written in ``out`` (those three arrays) when it is given."""
    from metrology import deviation

    angle = np.arctan2(fund.imag, fund.real)
    angle -= angle[0]
    np.degrees(angle, out=angle)
    angle += 180.0
    np.remainder(angle, 360.0, out=angle)
    angle -= 180.0
    dev = deviation.window_values(v + absent, udin)
    results = angle, np.stack([dev[key] for key in deviation.WINDOW_KEYS]), msv + absent[:, None]
    if out is None:
        return results
    angle_out, dev_out, msv_out = (_written(a, b) for a, b in zip(out, results, strict=True))
    return angle_out, dev_out, msv_out


def window_rfft(x: np.ndarray, nl: int, ni: int) -> np.ndarray:
    """The first ``nl`` lines of the real DFT of each of the first ``ni`` columns of ``x`` (N, >= ni) -> (ni, nl)
    complex."""
    return np.fft.rfft(x[:, :ni], axis=0)[:nl].T
