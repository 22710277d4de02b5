"""The driver suite (tests/hil/driver_suite.py) on the simulated board, in virtual time."""
from __future__ import annotations

import pytest

from hal.ade9000 import ChipSettings
from hal.board import BoardParams, default_channels
from hal.hardware import open_hardware
from tests.hil.driver_suite import *  # noqa: F403 - the shared suite


@pytest.fixture
def hw():
    board = BoardParams("sim", channels=default_channels(), sim_noise=True, sim_seed=3)
    hardware = open_hardware(board, ChipSettings(default_channels()), realtime=False)
    hardware.chip.bring_up()
    yield hardware
    hardware.close()
