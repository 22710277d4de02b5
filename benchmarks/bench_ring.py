"""Samples ring against multiprocessing.Queue: throughput and writer-to-reader wake latency.

Blocks are what acquisition writes: 7 channels of int32 at 32 kSPS, 256 frames (8 ms) per block.
Both transports run in the same process layout (writer process -> reader process) in the same run.
Targets: throughput at least 10x the Queue's; p99 wake latency under 1 ms.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time

import numpy as np

from firmware.ipc.ring import Ring, RingReader
from firmware.ipc.samples import SampleBlock, block_size

FRAMES_PER_BLOCK = 256
THROUGHPUT_BLOCKS = 4000
LATENCY_SAMPLES = 1000
LATENCY_PERIOD_S = 0.002


def _block(i: int) -> bytes:
    codes = np.full((FRAMES_PER_BLOCK, 7), i, dtype=np.int32)
    return SampleBlock(i * FRAMES_PER_BLOCK, time.perf_counter_ns(), 32000.0, codes, (1e-6,) * 7).encode()


def _stamp(data: bytes) -> int:
    return SampleBlock.decode(data).timestamp_ns


# -------------------------------------------------------------------------------------------- ring

def _ring_writer(name: str, n: int, period_s: float, ready) -> None:
    ring = Ring.attach(name, timeout_s=5)
    blocks = [_block(i) for i in range(min(n, 64))]
    ready.wait()
    for i in range(n):
        if period_s:
            time.sleep(period_s)
            ring.write(_block(i))
        else:
            ring.write(blocks[i % len(blocks)])


def _ring_run(n: int, period_s: float) -> tuple[float, list[int], int]:
    name = f"bench-ring-{os.getpid()}"
    ring = Ring.create(name, block_size(FRAMES_PER_BLOCK), max(n + 1, 64))
    reader = RingReader(ring)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_ring_writer, args=(name, n, period_s, ready))
    proc.start()
    latencies = []
    time.sleep(0.5)
    ready.set()
    first = None
    for _ in range(n):
        data = reader.read(timeout_s=10)
        now = time.perf_counter_ns()
        if data is None:
            break
        first = first or now
        if period_s:
            latencies.append(now - _stamp(data))
    elapsed = (time.perf_counter_ns() - first) / 1e9 if first else float("inf")
    proc.join()
    lost = reader.lost
    ring.unlink()
    return elapsed, latencies, lost


# ------------------------------------------------------------------------------------------- queue

def _queue_writer(q, n: int, period_s: float, ready) -> None:
    blocks = [_block(i) for i in range(min(n, 64))]
    ready.wait()
    for i in range(n):
        if period_s:
            time.sleep(period_s)
            q.put(_block(i))
        else:
            q.put(blocks[i % len(blocks)])


def _queue_run(n: int, period_s: float) -> tuple[float, list[int]]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    ready = ctx.Event()
    proc = ctx.Process(target=_queue_writer, args=(q, n, period_s, ready))
    proc.start()
    time.sleep(0.5)
    ready.set()
    latencies = []
    first = None
    for _ in range(n):
        data = q.get(timeout=10)
        now = time.perf_counter_ns()
        first = first or now
        if period_s:
            latencies.append(now - _stamp(data))
    elapsed = (time.perf_counter_ns() - first) / 1e9
    proc.join()
    return elapsed, latencies


def _pct(values: list[int], q: float) -> float:
    return float(np.percentile(np.asarray(values) / 1e6, q))


def main() -> None:
    ring_t, _, lost = _ring_run(THROUGHPUT_BLOCKS, 0.0)
    queue_t, _ = _queue_run(THROUGHPUT_BLOCKS, 0.0)
    ring_rate, queue_rate = THROUGHPUT_BLOCKS / ring_t, THROUGHPUT_BLOCKS / queue_t
    seconds_of_signal = FRAMES_PER_BLOCK / 32000
    print(f"block: 7 ch x {FRAMES_PER_BLOCK} frames int32 ({block_size(FRAMES_PER_BLOCK)} B, "
          f"{seconds_of_signal * 1e3:g} ms of 32 kSPS)")
    print(f"throughput  ring  {ring_rate:10.0f} blocks/s ({ring_rate * seconds_of_signal:7.0f}x real time), "
          f"lost {lost}")
    print(f"throughput  queue {queue_rate:10.0f} blocks/s ({queue_rate * seconds_of_signal:7.0f}x real time)")
    print(f"RATIO throughput ring/queue = {ring_rate / queue_rate:.1f}x   (target >= 10x)")
    _, ring_lat, _ = _ring_run(LATENCY_SAMPLES, LATENCY_PERIOD_S)
    _, queue_lat = _queue_run(LATENCY_SAMPLES, LATENCY_PERIOD_S)
    r50, r99, q50, q99 = _pct(ring_lat, 50), _pct(ring_lat, 99), _pct(queue_lat, 50), _pct(queue_lat, 99)
    print(f"wake latency ring  p50 {r50:.3f} ms  p99 {r99:.3f} ms   (target p99 < 1 ms)")
    print(f"wake latency queue p50 {q50:.3f} ms  p99 {q99:.3f} ms")
    print(f"RATIO p99 latency queue/ring = {q99 / r99:.1f}x")


if __name__ == "__main__":
    main()
