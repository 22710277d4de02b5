"""Flicker throughput: the IEC 61000-4-15 flickermeter's real-time factor on its own and its share of the
metrology pipeline it runs in, measured in the same run. ``python -m benchmarks flicker``.

The pipeline's flickermeter takes every input block (7 channels at 32 kSPS, batches of 4096 frames as the
metrology service feeds them, and 128-frame blocks without batching), forms the three phase voltages and
runs the chain of metrology/flicker.py on them. ``make run`` feeds the pipeline in real time for a day: the
flickermeter keeps up when its real-time factor is far above 1, and it should not take a large share of the
pipeline's >= 100x budget (bench_metrology). Figures are the median CPU time of ``RUNS`` runs on one pinned
CPU; the ratio against the whole pipeline (which includes the flickermeter) is the flickermeter's share.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks.bench_metrology import BATCH, FS, SMALL_BLOCK, T0_NS, _load, _pin_one_cpu, _signal, pipeline_rtf
from metrology.flicker import PipelineFlicker
from metrology.settings import MetrologySettings
from metrology.systems import wiring

SECONDS = 20.0
RUNS = 5
TARGET_SHARE = 0.15       # the flickermeter should cost at most this fraction of the pipeline's time


def _flicker_cpu(x: np.ndarray, nominal: float, batch: int) -> float:
    s = MetrologySettings(nominal_frequency=nominal)
    w = wiring(s.system_type)
    fl = PipelineFlicker(FS, s, w.matrix, w.signal_present(), line_ref=False)
    c0 = time.process_time()
    for first in range(0, x.shape[0], batch):
        fl.process(x[first:first + batch], T0_NS + int(first * 1e9 / FS))
    return time.process_time() - c0


def flicker_rtf(x: np.ndarray, nominal: float, batch: int = BATCH, runs: int = RUNS) -> float:
    _flicker_cpu(x[: int(2 * FS)], nominal, batch)
    return x.shape[0] / FS / statistics.median(_flicker_cpu(x, nominal, batch) for _ in range(runs))


def main() -> int:
    print(f"flicker: {_pin_one_cpu()}, {_load()}, median of {RUNS} runs of {SECONDS:.0f} s of signal")
    for nominal in (50.0, 60.0):
        x = _signal(SECONDS, nominal)
        fl = flicker_rtf(x, nominal)
        pipe, _, _ = pipeline_rtf(x, nominal, runs=RUNS)
        share = pipe / fl
        print(f"flicker, {nominal:.0f} Hz, 3 voltages of 7 ch at 32 kSPS, batches of {BATCH}: {fl:.0f}x real time "
              f"by CPU time; the pipeline with it {pipe:.1f}x; flicker's share of the pipeline {share:.1%} "
              f"(target <= {TARGET_SHARE:.0%}: ratio {share / TARGET_SHARE:.2f})")
    x = _signal(5.0, 50.0)
    fl = flicker_rtf(x, 50.0, SMALL_BLOCK, runs=3)
    print(f"flicker, 50 Hz, {SMALL_BLOCK}-frame blocks (no batching): {fl:.0f}x real time by CPU time")
    print(f"flicker: {_load()} after the runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
