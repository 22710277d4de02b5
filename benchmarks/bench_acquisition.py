"""CPU time of the acquisition path per second of 32 kSPS, 7-channel samples, through the simulated ADE9000.

Measured in virtual time (the simulator produces samples as fast as the driver consumes them), so the
figures are pure CPU: the ratio to real time is the share of one core the path needs. Reported:

- ``full``: simulated chip + driver (SPI protocol, CRC-checked register reads, half-buffer burst reads
  split to 4096 bytes, decoding) + SampleBlock encoding into a shared-memory ring;
- ``sim_only``: the simulated chip's own share (signal generation, ADC model, its DSP), measured alone;
- ``driver``: ``full`` minus ``sim_only``: what the CM4 would spend on the same work with a real chip;
- ``per_half_ms``: the driver's CPU per PAGE_FULL (one half buffer, 4 ms of samples) against the
  deadline of one half-buffer period.
"""
from __future__ import annotations

import time
import uuid

import numpy as np

from firmware.ipc.ring import Ring
from firmware.ipc.samples import block_size
from firmware.ipc.snapshot import Snapshot
from firmware.services.acquisition import ENERGY_LAYOUT, Acquisition
from hal.ade9000 import ChipSettings
from hal.board import BoardParams, default_channels
from hal.clock import VirtualClock
from hal.sim.chip import SimAde9000
from hal.sim.dsp import FRAME_NS
from hal.sim.signals import day_profile

SECONDS = 5.0
HALF_PERIOD_MS = 4.0


def _full(seconds: float) -> float:
    tag = uuid.uuid4().hex[:8]
    ring = Ring.create(f"bench-acq-{tag}", block_size(128), 1024)
    snap = Snapshot.create(f"bench-acq-{tag}.e", ENERGY_LAYOUT)
    try:
        board = BoardParams("sim", channels=default_channels())
        acq = Acquisition(board, ChipSettings(board.channels), ring, snap, source=day_profile(), realtime=False)
        acq.start()
        t0 = time.process_time()
        n = int(seconds * 250)
        while acq.hw.stream.stats.blocks < n:
            acq.pump()
        return time.process_time() - t0
    finally:
        for obj in (ring, snap):
            obj.close()
            obj.unlink()


def _sim_only(seconds: float) -> float:
    clock = VirtualClock()
    chip = SimAde9000(day_profile(), clock, default_channels())
    chip.transfer(b"\x48\x00\x00\x01")          # RUN = 1 (0x480 << 4, write)
    step_ns = 128 * FRAME_NS
    t0 = time.process_time()
    for _ in range(int(seconds * 250)):
        clock.advance_ns(step_ns)
        chip.sync()
    return time.process_time() - t0


def run(seconds: float = SECONDS) -> list[dict[str, float | str]]:
    full = _full(seconds)
    sim = _sim_only(seconds)
    driver = max(full - sim, 0.0)
    halves = seconds * 250
    rows = [
        {"name": "full", "cpu_s_per_s": full / seconds, "ratio_to_real_time": full / seconds},
        {"name": "sim_only", "cpu_s_per_s": sim / seconds, "ratio_to_real_time": sim / seconds},
        {"name": "driver", "cpu_s_per_s": driver / seconds, "ratio_to_real_time": driver / seconds},
        {"name": "per_half_ms", "cpu_s_per_s": driver / halves * 1e3,
         "ratio_to_real_time": driver / halves * 1e3 / HALF_PERIOD_MS},
    ]
    return rows


def _live(read_loop: str, seconds: float, hogs: int) -> dict[str, float]:
    """Real time against the simulated chip in its own process: the host process's CPU per second of signal
    (the read loop and the draining, without the chip's), frames lost, and the C thread's wake-up latency."""
    import os
    import subprocess
    import sys

    from firmware.config.board import load_board
    from hal.ade9000 import EnergyReading
    from hal.hardware import open_hardware

    board = load_board(os.path.join(os.path.dirname(__file__), "..", "boards", "sim.toml"))
    hw = open_hardware(board, ChipSettings(board.channels), source=day_profile(), realtime=True, read_loop=read_loop)
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(hogs)]
    try:
        hw.chip.bring_up()
        hw.stream.start()
        if read_loop == "c":
            hw.stream.latency(reset=True)
        t0, c0 = time.monotonic(), time.process_time()
        while time.monotonic() - t0 < seconds:
            for item in hw.stream.poll(0.1):
                if not isinstance(item, EnergyReading):
                    item.codes.sum()
        cpu = (time.process_time() - c0) / (time.monotonic() - t0)
        out = {"cpu": cpu, "lost": float(hw.stream.stats.lost_frames), "frames": float(hw.stream.stats.frames)}
        if read_loop == "c":
            out.update(hw.stream.latency())
        return out
    finally:
        for p in procs:
            p.kill()
            p.wait()
        hw.close()


def main() -> None:
    live_s = 20.0
    print(f"\nread loops in real time, {live_s:g} s each, simulated chip in its own process (CPU of the host "
          "process only: the C thread and the Python draining)")
    base = _live("python", live_s, 0)
    for name, loop, hogs in (("python", "python", 0), ("c", "c", 0), ("c + 2 hogs", "c", 2)):
        r = base if name == "python" else _live(loop, live_s, hogs)
        lat = (f"  wake-up p50 {r['p50_us']:.0f} us p99 {r['p99_us']:.0f} us max {r['max_us']:.0f} us, "
               f"{r['over_3.5ms']} past the 3.5-ms deadline" if "p50_us" in r else "")
        print(f"{name:<12} CPU {r['cpu']:.3f} s/s  ratio to python {r['cpu'] / base['cpu']:.2f}  lost "
              f"{r['lost']:.0f} of {r['lost'] + r['frames']:.0f} frames{lat}")

    print(f"acquisition path, {SECONDS:g} s of 32 kSPS x 7 channels (day profile), simulated ADE9000, virtual time")
    print(f"{'part':<14}{'CPU s per s of signal':>24}{'ratio to real time':>22}")
    for row in run():
        unit = "ms per half buffer" if row["name"] == "per_half_ms" else ""
        print(f"{row['name']:<14}{row['cpu_s_per_s']:>24.4f}{row['ratio_to_real_time']:>22.3f}  {unit}")
    print("ratio < 1: the path keeps up with real time on this machine; per_half_ms ratio is the share of the "
          "4 ms half-buffer deadline the driver uses.")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
