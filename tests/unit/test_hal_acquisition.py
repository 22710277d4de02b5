"""The acquisition service's work on the simulated board: SampleBlocks on a real shared-memory ring, chip energy
on a real snapshot, gaps and chip re-initialisations reported downstream; and the service as a process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from firmware.config.board import load_board
from firmware.ipc.names import instance_name
from firmware.ipc.ring import Ring, RingReader
from firmware.ipc.samples import FLAG_CHIP_RESET, FLAG_GAP, FLAG_SIMULATED, SampleBlock, block_size
from firmware.ipc.snapshot import Snapshot
from firmware.services.acquisition import ENERGY_LAYOUT, Acquisition
from hal.ade9000 import ChipSettings
from hal.sim.signals import steady
from tests.support.shm_sweep import sweep_instance

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def shm():
    tag = uuid.uuid4().hex[:8]
    ring = Ring.create(f"test-acq-{tag}.samples", block_size(128), 512)
    snap = Snapshot.create(f"test-acq-{tag}.chip_energy", ENERGY_LAYOUT)
    yield ring, snap
    for obj in (ring, snap):
        obj.close()
        obj.unlink()


def make(shm, **kw):
    board = load_board(REPO / "boards" / "sim.toml")
    ring, snap = shm
    acq = Acquisition(board, ChipSettings(board.channels), ring, snap, source=steady(230.0, 5.0, 20.0),
                      realtime=False, **kw)
    acq.start()
    return acq, RingReader(ring, start="oldest"), snap


def run_with_intervals(shm, pumps, before_pump=None):
    """Acquisition with a chip_intervals ring, pumped ``pumps`` times (``before_pump(acq, k)`` first, if given):
    (acquisition, sample-ring reader, the chip energy records written)."""
    from firmware.ipc import chipenergy

    ring = Ring.create(f"test-acq-{uuid.uuid4().hex[:8]}.chip_intervals", chipenergy.RECORD_SIZE, 64)
    try:
        acq, reader, _ = make(shm, intervals=ring)
        for k in range(pumps):
            if before_pump is not None:
                before_pump(acq, k)
            acq.pump()
        rr = RingReader(ring, start="oldest")
        recs = []
        while (data := rr.read(0)) is not None:
            recs.append(chipenergy.ChipEnergyRecord.decode(data))
    finally:
        ring.close()
        ring.unlink()
    return acq, reader, recs


def drain(reader):
    out = []
    while (data := reader.read(0)) is not None:
        out.append(SampleBlock.decode(data))
    return out


def test_blocks_on_the_ring_and_energy_on_the_snapshot(shm):
    acq, reader, snap = make(shm)
    for _ in range(300):                          # 1.2 s of virtual time
        acq.pump()
    blocks = drain(reader)
    assert len(blocks) == 300 - 1 and reader.lost == 0          # one poll is the EGYRDY interrupt
    assert [b.first_index for b in blocks] == [128 * k for k in range(len(blocks))]
    assert all(b.flags == FLAG_SIMULATED and b.sample_rate_hz == 32000.0 for b in blocks)
    v = np.concatenate([b.physical() for b in blocks])
    assert np.sqrt(np.mean(v[:32000, 1] ** 2)) == pytest.approx(230.0, rel=2e-4)   # ADC noise, 1 s window
    e = snap.read()
    truth = steady(230.0, 5.0, 20.0).truth(0)["a"]
    assert e["chip_intervals"] == 1 and 245 <= e["blocks"] <= 250      # counters as of the first EGYRDY (1 s)
    # first interval: includes the chip's start-up, within 0.5 %
    assert e["chip_wh"] == pytest.approx(np.full(3, truth["p"] / 3600), rel=5e-3)


def test_gap_and_chip_reset_reach_the_ring(shm):
    acq, reader, _ = make(shm)
    for _ in range(10):
        acq.pump()
    acq.hw.sim.faults.late_pages = 8
    for _ in range(5):
        acq.pump()
    acq.hw.sim.faults.crc_errors = 6              # 4 failed reads in a row: chip re-initialised
    for _ in range(5):
        acq.pump()
    acq.hw.sim.faults.crc_errors = 0
    for _ in range(5):
        acq.pump()
    blocks = drain(reader)
    gaps = [b for b in blocks if b.flags & FLAG_GAP]
    assert gaps[0].lost_frames == 128
    reset = [b for b in blocks if b.flags & FLAG_CHIP_RESET]
    assert len(reset) == 1 and reset[0].flags & FLAG_GAP and acq.restarts == 1
    idx = [b.first_index for b in blocks]
    assert all(b - a == 128 + n.lost_frames for a, b, n in zip(idx, idx[1:], blocks[1:]))   # never glued


def test_service_process_streams_in_real_time(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (tmp_path / "meter.toml").write_text(f'[meter]\ndata_dir = "{tmp_path}"\nrun_dir = "{run_dir}"\n'
                                         '[simulation]\nprofile = "steady"\n[log]\nfile = false\n')
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "firmware.services.acquisition", "--config",
                             str(tmp_path / "meter.toml"), "--board", str(REPO / "boards" / "sim.toml"),
                             "--run-dir", str(run_dir)], cwd=REPO, env=env)
    name = f"{instance_name(run_dir)}.samples"
    try:
        ring = Ring.attach(name, timeout_s=30.0)
        reader = RingReader(ring, start="latest")
        t0 = time.monotonic()
        blocks = []
        while time.monotonic() - t0 < 5.0 and len(blocks) < 250:
            data = reader.read(0.5)
            if data is not None:
                blocks.append(SampleBlock.decode(data))
        # real time, ~250 blocks per second; on a loaded machine the simulated chip runs on while the
        # process is starved, and what it misses must show as gaps, never as spliced samples
        assert len(blocks) >= 50
        idx = np.array([b.first_index for b in blocks])
        lost = np.array([b.lost_frames for b in blocks])
        assert np.all(np.diff(idx) == 128 + lost[1:])
        ts = np.array([b.timestamp_ns for b in blocks])
        # time stamps follow the frame index at 32 kSPS: within one page (0.5 ms) of count resolution plus
        # half the 1 ms bracket of the page-register read, for each of the two blocks compared
        assert np.abs((ts - ts[0]) - (idx - idx[0]) * 31250).max() <= 2_000_000
        assert all(b.flags & FLAG_SIMULATED for b in blocks)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        sweep_instance(run_dir)          # the samples ring, the chip energy snapshot and intervals ring


def test_chip_energy_intervals_name_the_frames_they_cover(shm):
    """One record per EGYRDY on the chip_intervals ring: consecutive frame ranges of exactly one interval
    (32,000 frames at 1 s), the energy of 230 V x 5 A at 20 degrees per phase, and the run's epoch."""
    acq, reader, recs = run_with_intervals(shm, 1260)      # ~5 s of virtual time
    assert len(recs) >= 4
    for a, b in zip(recs, recs[1:]):
        assert b.start_index == a.end_index and b.end_index - b.start_index == 32_000 and not b.flags
    assert {r.epoch for r in recs} == {acq.epoch}
    blocks = drain(reader)
    # boundaries within a page (16 frames) of the sample stream's own position of the latch
    assert recs[0].end_index <= blocks[-1].first_index + 128
    p = 230 * 5 * np.cos(np.radians(20))
    np.testing.assert_allclose(recs[-1].wh, p / 3600, rtol=2e-3)     # chip model: 0.1 % (its own tolerance)
    np.testing.assert_allclose(recs[-1].varh, 230 * 5 * np.sin(np.radians(20)) / 3600, rtol=5e-3)


def test_a_host_stalled_past_several_energy_intervals_loses_no_chip_energy(shm):
    """The host sleeps 2.5 s (EGYRDY of two intervals never served): the accumulators kept adding, so the next
    record spans all three intervals, the records stay contiguous, and their energy is the signal's."""
    from firmware.ipc import chipenergy

    def stall(acq, k):
        if k == 600:
            acq.hw.sim.faults.late_pages = int(2.5 * 32_000) // 16

    _, _, recs = run_with_intervals(shm, 2500, stall)       # ~10 s of virtual time
    spans = [r.end_index - r.start_index for r in recs]
    assert not any(r.flags & chipenergy.FLAG_MISSED for r in recs)
    wide = recs[spans.index(max(spans))]
    k = (wide.end_index - wide.start_index) // 32_000
    assert k >= 2 and wide.end_index - wide.start_index == k * 32_000 and wide.interval_s == pytest.approx(k)
    for a, b in zip(recs[1:], recs[2:]):
        assert b.start_index == a.end_index
    p = 230 * 5 * np.cos(np.radians(20))
    np.testing.assert_allclose(wide.wh, k * p / 3600, rtol=2e-3)
    covered = (recs[-1].end_index - recs[1].start_index) / 32_000
    np.testing.assert_allclose(sum(r.wh for r in recs[1:]), covered * p / 3600, rtol=2e-3)
