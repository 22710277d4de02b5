"""Calibration reaches the revenue path: a simulated board with gain, offset and phase errors on a channel,
calibrated by the values that cancel them, measures the true power through acquisition and metrology.

The simulated ADC applies the errors (hal/sim/adc.py): gain (1 + e), an offset in codes, and a time lag that is
the phase error at the nominal frequency. The calibration removes them: gain by the scale, offset subtracted in
terminal units, phase as a per-channel time advance in the resampler.
"""
from __future__ import annotations

import math
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from firmware.config.board import load_board
from firmware.ipc.ring import Ring, RingReader
from firmware.ipc.samples import SampleBlock, block_size
from firmware.ipc.snapshot import Snapshot
from firmware.services.acquisition import ENERGY_LAYOUT, Acquisition
from hal.ade9000 import ChipSettings
from hal.sim.signals import steady
from metrology.pipeline import Pipeline
from metrology.settings import MetrologySettings

REPO = Path(__file__).resolve().parents[2]
F0 = 50.0
PF_ANGLE_DEG = 30.0
GAIN_ERROR = 0.02
OFFSET_CODES = 20000.0
PHASE_ERROR_DEG = 1.0
# The energy accuracy the meter promises for I >= 5 % In (0.02 %); calibrated errors measure ~1e-7 here
REL_CALIBRATED = 2e-4


@pytest.fixture
def shm():
    tag = uuid.uuid4().hex[:8]
    ring = Ring.create(f"test-cal-{tag}.samples", block_size(128), 1024)
    snap = Snapshot.create(f"test-cal-{tag}.chip_energy", ENERGY_LAYOUT)
    yield ring, snap
    for obj in (ring, snap):
        obj.close()
        obj.unlink()


def board_with_errors(calibrated: bool):
    board = load_board(REPO / "boards" / "sim.toml")
    channels = list(board.channels)
    ia = replace(channels[0], sim_gain_error=GAIN_ERROR, sim_offset_codes=OFFSET_CODES,
                 sim_phase_error_deg=PHASE_ERROR_DEG)
    if calibrated:
        gain = 1.0 / (1.0 + GAIN_ERROR)
        ia = replace(ia, cal_gain=gain, cal_phase_deg=PHASE_ERROR_DEG,
                     cal_offset=OFFSET_CODES * ia.ideal_scale() * gain)
    channels[0] = ia
    return replace(board, channels=tuple(channels))


def measure(shm, board, seconds: float = 3.0) -> dict:
    ring, snap = shm
    acq = Acquisition(board, ChipSettings(board.channels), ring, snap, realtime=False,
                      source=steady(230.0, 5.0, PF_ANGLE_DEG, nominal_hz=F0))
    acq.start()
    reader = RingReader(ring, start="oldest")
    pipeline = Pipeline(MetrologySettings(nominal_frequency=F0))
    secs = []
    for _ in range(int(seconds * 250) + 5):
        acq.pump()
        while (data := reader.read(0)) is not None:
            secs += pipeline.feed(SampleBlock.decode(data)).seconds
    assert reader.lost == 0
    return secs[-1].values


@pytest.mark.parametrize("calibrated", [False, True])
def test_calibration_removes_gain_offset_and_phase_errors(shm, calibrated):
    v = measure(shm, board_with_errors(calibrated))
    p_true = 230.0 * 5.0 * math.cos(math.radians(PF_ANGLE_DEG))
    q_true = 230.0 * 5.0 * math.sin(math.radians(PF_ANGLE_DEG))
    errors = {"i_a": v["i"][0] / 5.0 - 1, "p_a": v["p"][0] / p_true - 1, "q_a": v["q"][0] / q_true - 1,
              "p_b": v["p"][1] / p_true - 1}
    print("calibrated" if calibrated else "uncalibrated", {k: f"{e:+.2e}" for k, e in errors.items()})
    assert abs(errors["p_b"]) < REL_CALIBRATED          # the channel without errors, as a control
    if calibrated:
        for name in ("i_a", "p_a", "q_a"):
            assert abs(errors[name]) < REL_CALIBRATED, (name, errors)
    else:
        # What the errors do when nothing removes them: the test can tell calibrated from not.
        # at 30 degrees the +2 % gain and the 1 degree lag partly cancel in W (cos 31 / cos 30 = 0.990)
        assert abs(errors["p_a"]) > 0.005 and abs(errors["q_a"]) > 0.02


def test_calibration_travels_with_the_samples(shm):
    board = board_with_errors(calibrated=True)
    ring, snap = shm
    acq = Acquisition(board, ChipSettings(board.channels), ring, snap, realtime=False, source=steady(nominal_hz=F0))
    acq.start()
    reader = RingReader(ring, start="oldest")
    while (data := reader.read(0)) is None:
        acq.pump()
    block = SampleBlock.decode(data)
    ia = board.channels[0]
    assert block.scale[0] == pytest.approx(ia.scale()) and block.offset[0] == pytest.approx(ia.cal_offset)
    assert block.phase_deg == (PHASE_ERROR_DEG,) + (0.0,) * 6
    np.testing.assert_allclose(block.physical()[:, 0], block.codes[:, 0] * ia.scale() - ia.cal_offset)
