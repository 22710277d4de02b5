"""The simulated board's input follows the configured wiring (hal.sim.signals.Connected), and the simulated chip's
phase voltages follow ACCMODE.VCONSEL: for every system type the chip's elements (what its energy path adds up,
metrology.gapfill.phase_gain) and the sample path's derived signals (metrology.systems.wiring) meter the same
power."""
from __future__ import annotations

import numpy as np
import pytest

from hal.ade9000 import WIRING_VCONSEL
from hal.sim.dsp import phase_voltages
from hal.sim.signals import Connected, day_profile, terminals
from metrology.settings import SYSTEM_TYPES, MetrologySettings
from metrology.gapfill import phase_gain
from metrology.systems import I_PH, V_LN, wiring

FS = 32000.0
T = np.arange(int(FS)) / FS          # one second, 50 whole cycles


def _paths(source, system_type: str) -> tuple[float, float, float, float]:
    """(sample path W, chip path W, sample path var, chip path var) of one second."""
    x = source.sample(T)
    derived = x @ wiring(system_type).matrix
    v, i = derived[:, V_LN], derived[:, I_PH]
    samples_w = float(np.mean(np.sum(v * i, axis=1)))
    quarter = int(FS / 50 / 4)
    samples_var = float(np.mean(np.sum(np.roll(v, quarter, axis=0)[quarter:] * i[quarter:], axis=1)))
    chip_v = phase_voltages(x[:, 1::2][:, :3], WIRING_VCONSEL[system_type])
    gain = phase_gain(MetrologySettings(system_type=system_type))
    chip_w = float(np.mean((chip_v * x[:, 0:6:2]) @ gain))
    chip_var = float(np.mean((np.roll(chip_v, quarter, axis=0)[quarter:] * x[quarter:, 0:6:2]) @ gain))
    return samples_w, chip_w, samples_var, chip_var


def test_every_wiring_of_the_meter_is_a_wiring_of_the_simulated_board():
    assert set(SYSTEM_TYPES) <= set(WIRING_VCONSEL)
    for system_type in WIRING_VCONSEL:
        terminals(np.zeros((1, 7)), system_type)
    with pytest.raises(ValueError):
        Connected(day_profile(), "5W-STAR")


@pytest.mark.parametrize("system_type", SYSTEM_TYPES)
def test_both_energy_paths_meter_the_same_power(system_type):
    source = Connected(day_profile(), system_type)
    samples_w, chip_w, samples_var, chip_var = _paths(source, system_type)
    assert samples_w > 100.0
    assert chip_w == pytest.approx(samples_w, rel=1e-3)
    assert chip_var == pytest.approx(samples_var, rel=2e-2, abs=5.0)


def test_a_delta_meter_sees_line_to_line_voltages_and_no_neutral_current():
    x = Connected(day_profile(), "DELTA").sample(T)
    rms = np.sqrt(np.mean(x**2, axis=0))
    assert rms[1] == pytest.approx(np.sqrt(3) * 230.0 * np.sqrt(1 + 0.01**2 + 0.025**2 + 0.012**2), rel=2e-2)
    assert rms[3] == 0.0 and rms[6] == 0.0
    assert np.max(np.abs(x[:, 0] + x[:, 2] + x[:, 4])) < 1e-9
