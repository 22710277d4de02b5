"""The simulated ADE9000 against the register map and the data sheet's arithmetic."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hal.ade9000 import ChipSettings, EnergyReading
from hal.board import SAMPLE_FULL_SCALE_CODES, BoardParams, default_channels
from hal.hardware import open_hardware
from hal.regmap import regmap
from hal.sim import adc
from hal.sim.signals import steady

RM = regmap()


def make(source=None, channels=None, noise=False):
    channels = channels or default_channels()
    board = BoardParams("sim", channels=channels, sim_noise=noise)
    hw = open_hardware(board, ChipSettings(channels), source=source, realtime=False)
    hw.chip.bring_up()
    return hw


def energy(hw, which: int = 0) -> EnergyReading:
    """The ``which``-th EGYRDY reading after streaming starts (the first interval holds the filter start-up)."""
    hw.stream.start()
    seen = 0
    for _ in range(1000):
        for item in hw.stream.poll():
            if isinstance(item, EnergyReading):
                if seen == which:
                    return item
                seen += 1
    raise AssertionError("no energy reading")


def test_access_rules_read_only_and_write_one_to_clear():
    hw = make()
    part = hw.chip.read("PART_ID")
    hw.chip.bus.transfer(hw.chip.command(RM["PART_ID"].addr, False) + b"\x00\x00\x00\x00")
    assert hw.chip.read("PART_ID") == part                       # read-only: write ignored
    hw.sim.regs[RM["STATUS0"].addr] = 0b101
    hw.chip.write("STATUS0", 0b001)
    assert hw.chip.read("STATUS0") & 0b111 == 0b100                # write 1 to clear
    assert len(hw.chip.bus.transfer(hw.chip.command(RM["RUN"].addr, True) + bytes(4))) == 6  # 16-bit + CRC


def test_burst_read_is_split_to_the_transfer_limit():
    hw = make()
    before = hw.chip.bus.transfers
    data = hw.chip.burst_read(0x800, 1024)                       # half buffer = 4096 bytes + command
    assert len(data) == 4096 and hw.chip.bus.transfers - before == 2


def test_energy_path_matches_the_signal():
    hw = make(steady(230.0, 5.0, pf_angle_deg=30.0))
    r = energy(hw, 1)
    truth = steady(230.0, 5.0, pf_angle_deg=30.0).truth(0.5)["a"]
    # 1 s interval; the simulator integrates ideal samples, so agreement is to quantisation (<0.01 %)
    assert r.wh[:, 0] == pytest.approx(truth["p"] / 3600, rel=1e-4)
    assert r.wh[:, 1] == pytest.approx(truth["q1"] / 3600, rel=2e-3)
    assert r.wh[:, 2] == pytest.approx(truth["s"] / 3600, rel=1e-3)


def test_gain_calibration_registers_scale_the_energy_path():
    channels = tuple(dataclasses.replace(c, cal_gain=1.01) if c.name == "IA" else c for c in default_channels())
    hw = make(channels=channels)
    r = energy(hw)
    assert hw.chip.read_signed("AIGAIN") == round(0.01 * 2**27)
    assert r.wh[0, 0] / r.wh[1, 0] == pytest.approx(1.01, rel=1e-5)


def test_rms_power_and_period_registers():
    hw = make(steady(230.0, 5.0))
    hw.stream.start()
    list(hw.stream.blocks(max_blocks=60))                        # > 0.2 s: two measurement windows
    v_fs_rms = default_channels()[1].full_scale_peak() / np.sqrt(2)
    assert hw.chip.read("AVRMS") == pytest.approx(230.0 / v_fs_rms * RM.const("RMS_FULL_SCALE_CODES"), rel=1e-4)
    assert hw.chip.read("APERIOD") == pytest.approx(RM.const("PERIOD_SCALE") / 50.0 - 1, rel=1e-5)
    assert hw.chip.read_signed("AWATT") > 0 and hw.chip.read("BVRMS") > 0


def test_adc_quantise_standalone():
    ch = default_channels()
    phys = np.zeros((3, 7))
    phys[0, 1] = ch[1].full_scale_peak()                          # +1 V peak at the pins
    phys[1, 1] = 10 * ch[1].full_scale_peak()                     # far over range: clips
    codes = adc.quantise(phys, ch)
    assert codes.dtype == np.int32
    assert codes[0, 1] == round(SAMPLE_FULL_SCALE_CODES) and codes[1, 1] == 2**23 - 1
    noisy = adc.quantise(np.zeros((20000, 7)), ch, noise=True, rng=np.random.default_rng(1))
    assert noisy.std() == pytest.approx(adc.NOISE_RMS_CODES, rel=0.03)
    back = adc.to_physical(adc.quantise(phys[:1] * 0.5, ch), ch)
    assert back[0, 1] == pytest.approx(0.5 * ch[1].full_scale_peak(), abs=ch[1].scale())


def test_gain_offset_and_phase_errors_are_applied():
    base = default_channels()
    bad = tuple(dataclasses.replace(c, sim_gain_error=0.002, sim_offset_codes=100.0, sim_phase_error_deg=0.5)
                if c.name == "IA" else c for c in base)
    src = steady(230.0, 5.0)
    hw = make(src, channels=bad)
    hw.stream.start()
    block = next(hw.stream.blocks(max_blocks=1))
    t = (block.timestamp_ns - hw.clock.epoch_ns) / 1e9 + np.arange(128) / 32000
    lag = 0.5 / 360 / 50
    ideal = src.sample(t - lag)[:, 0] * 1.002 / base[0].ideal_scale() + 100.0
    assert np.abs(block.codes[:, 0] - ideal).max() <= 0.5 + 1e-6


def _no_load_meter(i_rms: float, no_load_va: float, noise: bool = False):
    channels = default_channels()
    board = BoardParams("sim", channels=channels, sim_noise=noise)
    hw = open_hardware(board, ChipSettings(channels, no_load_va=no_load_va), source=steady(230.0, i_rms),
                       realtime=False)
    hw.chip.bring_up()
    return hw


def test_no_load_thresholds_follow_the_trm_equation_and_are_written_at_configure():
    from hal.ade9000 import no_load_level
    # default board: +-1 V pins behind 1000:1 dividers and 1000:1 CTs into 50 ohm: full scale 707.1 V x 14.14 A
    va_full_scale = (1000 / 2**0.5) * (1000 / 50 / 2**0.5)
    assert no_load_level(default_channels(), 0.575) == round(20_694_066 * 64 * 0.575 / va_full_scale)
    hw = _no_load_meter(0.0, 0.575)
    assert [hw.chip.read(n) for n in ("ACT_NL_LVL", "REACT_NL_LVL", "APP_NL_LVL")] == [
        no_load_level(default_channels(), 0.575)] * 3
    assert _no_load_meter(0.0, 0.0).chip.read("ACT_NL_LVL") == RM["ACT_NL_LVL"].reset   # 0: left at reset


def test_with_the_current_circuit_open_the_chip_accumulators_register_nothing():
    hw = _no_load_meter(0.0, 0.575, noise=True)          # ADC noise on every channel, no current
    for k in range(3):
        assert not energy(hw, k).counts.any()


def test_a_load_below_the_no_load_level_registers_nothing_and_one_above_registers_in_full():
    # no_load_va 20 VA per phase: 0.05 A at 230 V (11.5 VA) is below it, 0.2 A (46 VA) above
    assert not energy(_no_load_meter(0.05, 20.0), 1).counts.any()
    assert energy(_no_load_meter(0.05, 0.0), 1).wh[:, 0] == pytest.approx(230 * 0.05 / 3600, rel=1e-3)
    assert energy(_no_load_meter(0.2, 20.0), 1).wh[:, 0] == pytest.approx(230 * 0.2 / 3600, rel=1e-3)
