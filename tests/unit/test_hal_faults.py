"""Fault injection on the simulated ADE9000: each fault gives the promised detection and message."""
from __future__ import annotations

import numpy as np
import pytest

from hal.ade9000 import ChipSettings
from hal.ade9000_stream import FLAG_GAP, HALF_FRAMES, RawBlock
from hal.board import BoardParams, default_channels
from hal.errors import BusError, ChipError, MeterTimeoutError
from hal.hardware import open_hardware


def make(noise: bool = True, **kw):
    board = BoardParams("sim", channels=default_channels(), sim_noise=noise, sim_seed=5)
    return open_hardware(board, ChipSettings(default_channels()), realtime=False, **kw)


def test_crc_errors_are_retried_and_counted():
    hw = make()
    hw.chip.bring_up()
    hw.sim.faults.crc_errors = 2
    assert hw.chip.read("PART_ID") & (1 << 20)
    assert hw.chip.stats.crc_errors == 2


def test_persistent_crc_errors_raise_bus_error():
    hw = make()
    hw.chip.bring_up()
    hw.sim.faults.crc_errors = 10
    with pytest.raises(BusError, match="CRC mismatch reading PART_ID 4 times"):
        hw.chip.read("PART_ID")
    assert hw.chip.stats.crc_retries_exhausted == 1


def test_missed_page_is_a_counted_gap_never_glued():
    hw = make(noise=False)
    hw.chip.bring_up()
    hw.stream.start()
    before = list(hw.stream.blocks(max_blocks=10))
    hw.sim.faults.late_pages = 8               # the host wakes one half buffer (4 ms) late
    after = list(hw.stream.blocks(max_blocks=5))
    gap = after[0]
    assert gap.flags & FLAG_GAP and gap.lost_frames == HALF_FRAMES
    assert gap.first_index == before[-1].first_index + HALF_FRAMES + gap.lost_frames
    assert not any(b.flags & FLAG_GAP for b in after[1:])
    assert [b.first_index for b in after[1:]] == [gap.first_index + HALF_FRAMES * k for k in range(1, 5)]
    assert hw.stream.stats.gaps == 1 and hw.stream.stats.lost_frames == HALF_FRAMES
    # the block after the gap carries the right samples for its index (not the lost ones)
    check_exact(hw, gap)


def test_long_stall_loses_whole_buffer_and_resumes():
    hw = make(noise=False)
    hw.chip.bring_up()
    hw.stream.start()
    list(hw.stream.blocks(max_blocks=3))
    hw.sim.faults.late_pages = 16 * 3 + 4     # 3.25 buffers late
    b = next(hw.stream.blocks(max_blocks=1))
    assert b.flags & FLAG_GAP and b.lost_frames > 0 and b.lost_frames % HALF_FRAMES == 0
    check_exact(hw, b)


def test_chip_that_never_finishes_reset():
    hw = make()
    hw.sim.faults.never_ready = True
    with pytest.raises(MeterTimeoutError, match="RSTDONE not set 0.5 s after reset.*CLKIN"):
        hw.chip.bring_up()


def test_absent_chip_reads_all_ones():
    hw = make()
    hw.sim.faults.absent = True
    with pytest.raises(ChipError, match="all ones: no chip is answering"):
        hw.chip.bring_up()


def test_configuration_upset_is_detected():
    hw = make()
    hw.chip.bring_up()
    assert hw.chip.check_health() == []
    hw.sim.upset("ACCMODE", 0x0100)
    problems = hw.chip.check_health()
    assert len(problems) == 1 and "configuration CRC changed" in problems[0]
    assert hw.chip.stats.config_crc_changes == 1


def test_write_verify_catches_a_write_that_did_not_take():
    hw = make()
    hw.chip.bring_up()
    real_write = hw.sim._write
    hw.sim._write = lambda addr, data: None     # the chip ignores writes (as with WR_LOCK set)
    try:
        with pytest.raises(ChipError, match="wrote PGA_GAIN = 0x15 but read back 0x0"):
            hw.chip.write("PGA_GAIN", 0x15)
    finally:
        hw.sim._write = real_write


def check_exact(hw, block: RawBlock) -> None:
    """Codes of a block equal the quantised source at the block's own sample times (within 1/2 LSB)."""
    fs = 32000.0
    t = (block.timestamp_ns - hw.clock.epoch_ns) / 1e9 + np.arange(len(block.codes)) / fs
    expected = hw.sim.frames.source.sample(t)
    scale = np.array([ch.ideal_scale() for ch in hw.chip.settings.channels])
    err = np.abs(block.codes * scale - expected) / scale
    assert err.max() <= 0.5 + 1e-6, err.max()


def test_sixty_seconds_sample_exact_without_loss():
    """60 s of virtual time through the whole SPI path: every frame arrives, each within 1/2 LSB of the signal."""
    hw = make(noise=False)
    hw.chip.bring_up()
    hw.stream.start()
    n_blocks = 60 * 32000 // HALF_FRAMES
    count = 0
    for block in hw.stream.blocks(max_blocks=n_blocks):
        assert block.first_index == count * HALF_FRAMES and not block.flags
        check_exact(hw, block)
        count += 1
    assert count == n_blocks and hw.stream.stats.lost_frames == 0
    assert (hw.clock.monotonic_ns() / 1e9) == pytest.approx(60.0, abs=0.01)


def test_starved_host_in_real_time_never_splices():
    """Real time, with the host sleeping up to 30 ms between interrupts: blocks are lost and reported, but every
    delivered block holds exactly the frames its index names (checked against the chip's own frame numbering)."""
    import random
    import time

    from hal.sim.signals import steady

    src = steady(230.0, 5.0, 10.0)
    board = BoardParams("sim", channels=default_channels(), sim_noise=False)
    hw = open_hardware(board, ChipSettings(default_channels()), source=src, realtime=True)
    hw.chip.bring_up()
    hw.stream.start()
    chip = hw.chip_process.control()            # the chip's own frame numbering, from its process
    scale = np.array([ch.ideal_scale() for ch in default_channels()])
    rng = random.Random(4)
    delivered, deadline = 0, time.monotonic() + 2.0
    while time.monotonic() < deadline:
        for block in hw.stream.poll():
            if not isinstance(block, RawBlock):
                continue
            frames = chip["capture_start"] + block.first_index + np.arange(len(block.codes))
            t = (chip["t0_ns"] + frames * 31_250) / 1e9
            err = np.abs(block.codes * scale - src.sample(t)) / scale
            assert err.max() <= 0.5 + 1e-6, f"block {block.first_index} holds other frames than its index"
            delivered += 1
        time.sleep(rng.choice([0, 0, 0.001, 0.003, 0.005, 0.009, 0.013, 0.03]))
    assert delivered > 20 and hw.stream.stats.gaps > 0
    hw.close()


def test_a_gap_marked_on_the_stream_is_carried_by_its_next_block():
    """Frames lost where the stream did not see them (another reader handing it back) reach the next block."""
    hw = make(noise=False)
    hw.chip.bring_up()
    hw.stream.start()
    first = next(hw.stream.blocks(max_blocks=1))
    hw.stream.mark_gap(300)
    after = list(hw.stream.blocks(max_blocks=2))
    assert not first.flags & FLAG_GAP
    assert after[0].flags & FLAG_GAP and after[0].lost_frames == 300
    assert not after[1].flags & FLAG_GAP and after[1].lost_frames == 0
    assert hw.stream.take_pending() == (0, 0)
