"""The revenue registers' inputs: which source a board gets, and the levels the engine sees."""
from __future__ import annotations

import pytest

from firmware.config import meter_schema
from firmware.revenue.inputs import SimInputs, open_inputs
from hal.errors import BusError
from tests.conftest import REPO


def test_board_file_decides_between_gpio_and_simulated_inputs(tmp_path):
    cfg = meter_schema().load({"upgrade": {"revenue_lock_file": str(tmp_path / "lock")},
                               "revenue": {"inputs": {"sim_dir": str(tmp_path / "inputs")}}})
    sim = open_inputs(cfg, REPO / "boards" / "sim.toml")
    assert isinstance(sim, SimInputs) and not sim.locked()
    (tmp_path / "lock").write_text("locked\n")
    assert sim.locked()
    # A real board's lock is its GPIO line: without the GPIO bindings this is an error naming them,
    # never the simulated board's files (which nobody would set on a sealed meter).
    with pytest.raises(BusError, match="gpiod"):
        open_inputs(cfg, REPO / "boards" / "cm4-ade9000.toml")
