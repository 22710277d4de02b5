"""Metrology throughput: real-time factor of the whole pipeline on one core, each C kernel against its
numpy reference, and peak memory. Run by ``make bench`` (``python -m benchmarks``) or on its own with
``python -m benchmarks.bench_metrology``.

The pipeline is fed 7 channels at 32 kSPS of a 60 Hz three-phase signal with 5th and 7th harmonics,
in batches of 4096 frames as the metrology service feeds it; it resamples to 512 samples/cycle, runs
half-cycle RMS, harmonics every 12 cycles, aggregation and energy. Target: >= 100x real time.
"""
from __future__ import annotations

import time
import tracemalloc

import numpy as np

from metrology import _kernels
from metrology._kernels import reference
from metrology.frequency import reference_filter
from metrology.pipeline import Pipeline
from metrology.settings import MetrologySettings

FS = 32000.0
SECONDS = 20.0
BATCH = 4096
TARGET_RTF = 100.0


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


def pipeline_rtf(x: np.ndarray, batch: int = BATCH) -> float:
    pl = Pipeline(MetrologySettings(nominal_frequency=60.0))
    t0 = time.perf_counter()
    for first in range(0, x.shape[0], batch):
        pl.feed_values(x[first:first + batch], first, 1_700_000_000_000_000_000 + int(first * 1e9 / FS))
    return x.shape[0] / FS / (time.perf_counter() - t0)


def _best(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def kernel_ratios() -> list[tuple[str, float, float]]:
    """(kernel, numpy seconds, C seconds) on one second of 60 Hz data."""
    if _kernels.BACKEND != "c":
        return []
    rng = np.random.default_rng(0)
    buf = rng.normal(size=(34000, 7))
    pos = np.sort(rng.uniform(10, 33900, 30720))
    delays = np.zeros(7)
    y = rng.normal(size=(60, 512, 11))
    sos = reference_filter(FS)
    ref = rng.normal(size=32000)
    zi = np.zeros((sos.shape[0], 2))
    out = []
    out.append(("resample (1 s, 7 ch, 512/cycle)", _best(lambda: reference.resample(buf, pos, delays)),
                _best(lambda: _kernels.c_resample(buf, pos, delays))))
    out.append(("cycle_stats (60 cycles, 11 signals)", _best(lambda: reference.cycle_stats(y, 0, 6, 3)),
                _best(lambda: _kernels.c_cycle_stats(y, 0, 6, 3))))
    blocks = [ref[i:i + 1024] for i in range(0, ref.size, 1024)]
    out.append(("sosfilt (1 s in 1024-sample blocks)",
                _best(lambda: [reference.sosfilt(sos, b, zi) for b in blocks]),
                _best(lambda: [_kernels.c_sosfilt(sos, b, zi) for b in blocks])))
    return out


def main() -> int:
    print(f"metrology: {_kernels.BACKEND_NOTE}")
    x = _signal(SECONDS)
    pipeline_rtf(x[: int(2 * FS)])                       # warm-up
    rtf = max(pipeline_rtf(x) for _ in range(3))
    print(f"metrology pipeline, 60 Hz, 7 ch at 32 kSPS, batches of {BATCH} frames: {rtf:.1f}x real time "
          f"(target {TARGET_RTF:.0f}x: ratio {rtf / TARGET_RTF:.2f})")
    rtf_small = pipeline_rtf(x[: int(5 * FS)], batch=128)
    print(f"metrology pipeline, 128-frame blocks (no batching): {rtf_small:.1f}x real time")
    for name, t_np, t_c in kernel_ratios():
        print(f"kernel {name}: numpy {t_np * 1e3:.2f} ms, C {t_c * 1e3:.3f} ms, C is {t_np / t_c:.1f}x faster")
    tracemalloc.start()
    pipeline_rtf(x[: int(5 * FS)])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"metrology pipeline peak traced memory over 5 s of input: {peak / 1e6:.1f} MB "
          f"(input array itself {x[: int(5 * FS)].nbytes / 1e6:.1f} MB, not counted)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
