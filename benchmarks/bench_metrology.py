"""Metrology throughput: real-time factor of the whole pipeline on one core, each C kernel against its
numpy reference, and peak memory. Run by ``make bench`` (``python -m benchmarks``) or on its own with
``python -m benchmarks metrology``.

The pipeline is fed 7 channels at 32 kSPS of a three-phase signal with 5th and 7th harmonics (60 Hz,
then 50 Hz), in batches of 4096 frames as the metrology service feeds it, with every feature on: it tracks
the frequency, resamples to 512 samples/cycle, runs half-cycle RMS, PQ events (dips, swells, interruptions, RVC)
and transients, flicker, harmonics and interharmonics every 12 (10) cycles, mains signalling voltage at four
frequencies, aggregation and energy with loss compensation. Target: >= 450x real time at 60 Hz on one core.

The process is pinned to one CPU for the measurement. Each figure is the median of ``RUNS`` runs, from
the CPU time the process used (what the pipeline costs one core) and from the wall clock on that core
(which also counts whatever else the machine ran meanwhile); the load average is printed beside them.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import time
import tracemalloc
from typing import Iterator

import numpy as np

from metrology import _kernels, signalling
from metrology._kernels import reference
from metrology.flicker import FlickerMeter
from metrology.frequency import CycleTracker, reference_filter
from metrology.intervals import sequence_matrix
from metrology.pipeline import Pipeline
from metrology.settings import LossCoefficients, LossCompensation, MetrologySettings
from metrology.systems import V_LN, wiring

FS = 32000.0
SECONDS = 20.0
BATCH = 4096             # firmware.services.metrology.BATCH_FRAMES
SMALL_BLOCK = 128        # one acquisition block (4 ms), no batching
RUNS = 5
TARGET_RTF = 450.0
SIGNALLING_HZ = (175.0, 316.67, 1050.0, 2000.0)     # as many as [pq] signalling_frequencies takes
LOSSES = LossCompensation(True, 1e6, 230.0, 1000.0, LossCoefficients(0.1, 0.3, 0.5, 1.0),
                          LossCoefficients(0.1, 0.3, 0.5, 1.0))
T0_NS = 1_700_000_000_000_000_000


def _signal(seconds: float, f: float = 60.0) -> np.ndarray:
    n = np.arange(int(seconds * FS))
    th = 2 * np.pi * f * n / FS
    x = np.zeros((n.size, 7))
    for p, shift in enumerate((0.0, -2 * np.pi / 3, 2 * np.pi / 3)):
        a = th + shift
        x[:, 2 * p + 1] = 325 * (np.cos(a) + 0.05 * np.cos(5 * a) + 0.03 * np.cos(7 * a))
        x[:, 2 * p] = 7.07 * (np.cos(a - 0.5) + 0.2 * np.cos(5 * (a - 0.5)))
    x[:, 6] = -(x[:, 0] + x[:, 2] + x[:, 4])
    return x


PHASE_CORRECTION_DEG = (0.12, -0.05, 0.2, 0.03, -0.1, 0.07, 0.15)   # a calibrated board: every input its own delay


def _run(x: np.ndarray, nominal: float, batch: int, phases: tuple[float, ...] = (0.0,) * 7) -> tuple[float, float]:
    """(CPU s, wall s) to feed ``x`` to a fresh pipeline in ``batch``-frame blocks."""
    pl = Pipeline(MetrologySettings(nominal_frequency=nominal, phase_correction_deg=phases,
                                    signalling_hz=SIGNALLING_HZ, losses=LOSSES))
    c0, t0 = time.process_time(), time.perf_counter()
    for first in range(0, x.shape[0], batch):
        pl.feed_values(x[first:first + batch], first, T0_NS + int(first * 1e9 / FS))
    return time.process_time() - c0, time.perf_counter() - t0


def pipeline_rtf(x: np.ndarray, nominal: float = 60.0, batch: int = BATCH, runs: int = RUNS,
                 phases: tuple[float, ...] = (0.0,) * 7) -> tuple[float, float, float]:
    """Median real-time factor over ``runs`` runs: (by CPU time, by wall clock, best by CPU time)."""
    _run(x[: int(2 * FS)], nominal, batch, phases)          # warm-up: imports, caches, allocator
    seconds = x.shape[0] / FS
    cpu, wall = zip(*(_run(x, nominal, batch, phases) for _ in range(runs)))
    return seconds / statistics.median(cpu), seconds / statistics.median(wall), seconds / min(cpu)


def _best(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _event_outputs(half_ms: np.ndarray, watched: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """half_cycle_events' outputs for a batch of cycles: Urms(1/2), its watched columns, the RVC candidates."""
    n = 2 * half_ms.shape[0]
    return np.empty((n, half_ms.shape[2])), np.empty((n, watched.shape[0])), np.empty(n)


def kernel_ratios() -> list[tuple[str, float, float]]:
    """(kernel, numpy seconds, C seconds) on one second of 60 Hz data (five windows for harmonic_groups)."""
    if _kernels.BACKEND != "c":
        return []
    rng = np.random.default_rng(0)
    buf = rng.normal(size=(34000, 7))
    bounds = 100.0 + np.arange(61) * (FS / 60.0)
    delays = np.zeros(7)
    x7 = rng.normal(size=(60, 512, 7))
    matrix = wiring("4W-WYE").matrix
    sos = reference_filter(FS)
    blocks = [buf[i:i + BATCH] for i in range(0, 32768, BATCH)]
    ref_w = wiring("4W-WYE").reference
    zi = np.zeros((sos.shape[0], 2))
    filtered = reference.sosfilt(sos, buf[:32768], zi, ref_w)[0] * 100
    lines = rng.normal(size=(10, 768)) + 1j * rng.normal(size=(10, 768))
    window = (rng.uniform(1, 300, 10), rng.uniform(1, 400, 10), 5.0, 6, np.full(10, 0.05))
    volts = matrix[:, V_LN] * 100.0
    urms = 230.0 + rng.normal(0, 0.5, (240, 3))
    limits = np.array([207.0, 253.0, 11.5])
    flicker = FlickerMeter(FS, 60.0, 120, channels=3)
    squares = 14400.0 + rng.normal(0, 10.0, (int(flicker.rate), 3))
    flicker_zi = np.zeros((flicker._filters.shape[0], 2, 3))
    tracker = CycleTracker(FS, 60.0, 30.0)
    table, params = tracker._delay_table, tracker._params.copy()
    state = np.array([FS / 60.0, np.nan, 0.0, 1.0])
    cyc = (rng.uniform(1, 5e4, (60, 11)), rng.normal(0, 1e3, (60, 3)), rng.normal(size=(60, 11)) * (1 + 1j),
           np.full(60, 1 / 60.0), np.full(60, 60.0))
    seq = sequence_matrix("ABC")
    rows, win = np.arange(7.0), np.zeros((12 * 512, 8))
    halves, watched = rng.uniform(5e4, 6e4, (60, 2, 11)), np.arange(3.0)
    flat, square = rng.normal(size=2100), (rng.uniform(size=2100) < 0.5).astype(np.float64)
    sums = (np.zeros(2100), np.zeros(2100), np.full(2100, np.nan), np.zeros(2100), np.empty(2100))
    inputs = np.fft.rfft(rng.normal(size=(7, 12 * 512)), axis=1)
    spectra = (inputs, np.ascontiguousarray(matrix[:, :10].T), cyc[0][:12], cyc[0][:12], 12, 64, 6144, 5.0, 6,
               np.full(10, 0.05), *signalling.bins(SIGNALLING_HZ, 60.0, 12), 0)
    present = np.ones(3)
    msv4 = rng.uniform(0.0, 5.0, (3, 4))

    def intervals(kernel):
        for lo in range(0, 60, 12):
            kernel(*(a[lo:lo + 12] for a in cyc), np.full(12, 1 / 12), present, 0.05, True, seq)
        kernel(*cyc, np.full(60, 1 / 60), present, 0.05, True, seq)
    return [
        ("resample_cycles (1 s, 7 ch, 60 cycles of 512)",
         _best(lambda: reference.resample_cycles(buf, bounds, 512, 0, delays)),
         _best(lambda: _kernels.c_resample_cycles(buf, bounds, 512, 0, delays))),
        ("cycle_stats (60 cycles, 7 inputs -> 11 signals)", _best(lambda: reference.cycle_stats(x7, matrix, 0, 6, 3)),
         _best(lambda: _kernels.c_cycle_stats(x7, matrix, 0, 6, 3))),
        (f"sosfilt of the reference (1 s in {BATCH}-frame blocks)",
         _best(lambda: [reference.sosfilt(sos, b, zi, ref_w) for b in blocks]),
         _best(lambda: [_kernels.c_sosfilt(sos, b, zi, ref_w) for b in blocks])),
        ("rising_crossings (1 s, 60 crossings)", _best(lambda: reference.rising_crossings(filtered, 1, 266)),
         _best(lambda: _kernels.c_rising_crossings(filtered, 1, 266))),
        ("track_crossings (1 s, 60 crossings: delays, acceptance)",
         _best(lambda: reference.track_crossings(filtered, 1, 266, state.copy(), table, params)),
         _best(lambda: _kernels.c_track_crossings(filtered, 1, 266, state.copy(), table, params))),
        ("harmonic_groups (5 windows of 12 cycles)",
         _best(lambda: [reference.harmonic_groups(lines, 12, 64) for _ in range(5)]),
         _best(lambda: [_kernels.c_harmonic_groups(lines, 12, 64) for _ in range(5)])),
        ("harmonic_values (5 windows of 12 cycles: every harmonic value)",
         _best(lambda: [reference.harmonic_values(lines, 12, 64, 6144, *window) for _ in range(5)]),
         _best(lambda: [_kernels.c_harmonic_values(lines, 12, 64, 6144, *window) for _ in range(5)])),
        ("window_harmonics (5 windows of 12 cycles: derived lines, harmonic values, 4 signalling frequencies)",
         _best(lambda: [reference.window_harmonics(*spectra) for _ in range(5)]),
         _best(lambda: [_kernels.c_window_harmonics(*spectra) for _ in range(5)])),
        ("cycle_change (transient screen, 60 cycles, 3 voltages)",
         _best(lambda: reference.cycle_change(x7, volts, None, np.empty(x7.shape[0]), np.empty((3, x7.shape[1])))),
         _best(lambda: _kernels.c_cycle_change(x7, volts, None, np.empty(x7.shape[0]), np.empty((3, x7.shape[1]))))),
        ("block_squares (flicker input, 1 s, 3 voltages)",
         _best(lambda: reference.block_squares(buf[:32000], volts, 32)),
         _best(lambda: _kernels.c_block_squares(buf[:32000], volts, 32))),
        ("flicker_chain (1 s of decimated squares, 3 voltages)",
         _best(lambda: reference.flicker_chain(squares, flicker._filters, flicker_zi, 1.0)),
         _best(lambda: _kernels.c_flicker_chain(squares, flicker._filters, flicker_zi, 1.0))),
        ("interval_values (1 s: 5 windows of 12 cycles and the second)",
         _best(lambda: intervals(reference.interval_values)), _best(lambda: intervals(_kernels.c_interval_values))),
        ("interval_energy (1 s of 60 cycles, with loss compensation)",
         _best(lambda: reference.interval_energy(cyc[0], cyc[1], cyc[2], cyc[3], present, 0.05, LOSSES)),
         _best(lambda: _kernels.c_interval_energy(cyc[0], cyc[1], cyc[2], cyc[3], present, 0.05, LOSSES))),
        ("aggregate_add (5 windows of 2100 values into the 3-s and 10-min sums)",
         _best(lambda: [reference.aggregate_add(flat, square, *sums) for _ in range(10)]),
         _best(lambda: [_kernels.c_aggregate_add(flat, square, *sums) for _ in range(10)])),
        ("cycle_times (1 s: 60 cycles in 8 batches)",
         _best(lambda: [reference.cycle_times(b, b + 533.3, T0_NS, 1e9 / FS) for b in np.array_split(bounds[:60], 8)]),
         _best(lambda: [_kernels.c_cycle_times(b, b + 533.3, T0_NS, 1e9 / FS) for b in np.array_split(bounds[:60], 8)])),
        ("window_append (1 s: 60 cycles of 7 inputs into 5 windows)",
         _best(lambda: [reference.window_append(x7, rows, win, k, k + 12, 0) for k in range(0, 60, 12)]),
         _best(lambda: [_kernels.c_window_append(x7, rows, win, k, k + 12, 0) for k in range(0, 60, 12)])),
        ("half_cycle_rms (1 s: 60 cycles in 8 batches, 3 watched voltages)",
         _best(lambda: [reference.half_cycle_rms(h, h[0, 0], watched) for h in np.array_split(halves, 8)]),
         _best(lambda: [_kernels.c_half_cycle_rms(h, h[0, 0], watched) for h in np.array_split(halves, 8)])),
        ("window_finish (1 s: 5 windows' angles, deviations and 4 signalling voltages)",
         _best(lambda: [reference.window_finish(cyc[2][k], urms[k], present * 0.0, msv4, 230.0) for k in range(5)]),
         _best(lambda: [_kernels.c_window_finish(cyc[2][k], urms[k], present * 0.0, msv4, 230.0) for k in range(5)])),
        ("window_rfft (1 s: 5 windows of 12 cycles, 7 inputs, the 768 lines used)",
         _best(lambda: [reference.window_rfft(win, 768, 7) for _ in range(5)]),
         _best(lambda: [_kernels.c_window_rfft(win, 768, 7) for _ in range(5)])),
        ("event_screen (1 s of Urms(1/2), 3 voltages, in 8 batches)",
         _best(lambda: [reference.event_screen(u, urms[:120], 120, limits, True) for u in np.split(urms[120:], 8)]),
         _best(lambda: [_kernels.c_event_screen(u, urms[:120], 120, limits, True) for u in np.split(urms[120:], 8)])),
        ("half_cycle_events (1 s: 60 cycles in 8 batches, Urms(1/2), the screen and the RVC history)",
         _best(lambda: [reference.half_cycle_events(h, h[0, 0].copy(), True, watched, np.zeros((120, 3)), 0, limits,
                                                    True, False, *_event_outputs(h, watched))
                        for h in np.array_split(halves, 8)]),
         _best(lambda: [_kernels.c_half_cycle_events(h, h[0, 0].copy(), True, watched, np.zeros((120, 3)), 0, limits,
                                                     True, False, *_event_outputs(h, watched))
                        for h in np.array_split(halves, 8)])),
    ]


@contextlib.contextmanager
def _reference_kernels() -> Iterator[None]:
    """The pipeline on the numpy reference of every kernel while inside (what it runs without the C extension)."""
    names = ("BACKEND", "BACKEND_NOTE", *_kernels.KERNELS)
    saved = {n: getattr(_kernels, n) for n in names}
    _kernels.use_reference("benchmark baseline")
    try:
        yield
    finally:
        for n, v in saved.items():
            setattr(_kernels, n, v)


def _pin_one_cpu() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu} of {os.cpu_count()}"


def _load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""


def main() -> int:
    print(f"metrology: {_kernels.BACKEND_NOTE}")
    affinity = _pin_one_cpu()
    print(f"metrology: {affinity}, {_load()}, median of {RUNS} runs of {SECONDS:.0f} s of signal")
    for nominal in (60.0, 50.0):
        x = _signal(SECONDS, nominal)
        cpu, wall, best = pipeline_rtf(x, nominal)
        print(f"metrology pipeline, {nominal:.0f} Hz, 7 ch at 32 kSPS, batches of {BATCH} frames: "
              f"{cpu:.1f}x real time by CPU time (best {best:.1f}x), {wall:.1f}x by wall clock "
              f"(target {TARGET_RTF:.0f}x: ratio {cpu / TARGET_RTF:.2f})")
        if nominal == 60.0 and _kernels.BACKEND == "c":
            with _reference_kernels():
                ref_cpu, _, _ = pipeline_rtf(x, nominal, runs=3)
            print(f"metrology pipeline, 60 Hz, on the numpy reference kernels (the baseline, same signal): "
                  f"{ref_cpu:.1f}x real time by CPU time; the C kernels are {cpu / ref_cpu:.2f}x that")
    cpu, wall, best = pipeline_rtf(_signal(SECONDS), 60.0, phases=PHASE_CORRECTION_DEG)
    print(f"metrology pipeline, 60 Hz, every input with its own phase correction (calibrated board): "
          f"{cpu:.1f}x real time by CPU time (best {best:.1f}x), {wall:.1f}x by wall clock")
    x = _signal(5.0)
    cpu, wall, _ = pipeline_rtf(x, 60.0, SMALL_BLOCK, runs=3)
    print(f"metrology pipeline, 60 Hz, {SMALL_BLOCK}-frame blocks (no batching): {cpu:.1f}x real time by CPU "
          f"time, {wall:.1f}x by wall clock")
    for name, t_np, t_c in kernel_ratios():
        print(f"kernel {name}: numpy {t_np * 1e3:.2f} ms, C {t_c * 1e3:.3f} ms, C is {t_np / t_c:.1f}x faster")
    tracemalloc.start()
    _run(x, 60.0, BATCH)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"metrology pipeline peak traced memory over 5 s of input: {peak / 1e6:.1f} MB "
          f"(input array itself {x.nbytes / 1e6:.1f} MB, not counted; ratio {peak / x.nbytes:.2f})")
    print(f"metrology: {_load()} after the runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
