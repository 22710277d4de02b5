"""The driver suite on the real board: set METER_BOARD=cm4-ade9000 on a CM4 with the ADE9000 fitted."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.hil.driver_suite import *  # noqa: F403 - the shared suite

BOARD = os.environ.get("METER_BOARD", "")
pytestmark = [pytest.mark.hil,
              pytest.mark.skipif(BOARD != "cm4-ade9000", reason="needs METER_BOARD=cm4-ade9000 and the real board")]


@pytest.fixture
def hw():
    from firmware.config.board import load_board
    from hal.ade9000 import ChipSettings
    from hal.hardware import open_hardware

    board = load_board(Path(__file__).resolve().parents[2] / "boards" / f"{BOARD}.toml")
    hardware = open_hardware(board, ChipSettings(board.channels), realtime=True)
    hardware.chip.bring_up()
    yield hardware
    hardware.close()
