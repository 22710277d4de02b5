"""What gap fill books from the chip's accumulators against what the sample path books for the same load.

The simulated ADE9000 (wired and set up as the system type says, ACCMODE.VCONSEL included) accumulates one
energy interval; ``metrology.gapfill.fill_energy`` turns it into the meter's energy as it would fill a hole of
that length; the metrology pipeline measures the same installation's samples. Both must book the same Wh, varh
and VAh per second, on every system type (a DELTA meter's chip meters each phase current against a line voltage,
√3 times the phase voltage the sample path takes it against).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hal.ade9000 import ChipSettings, EnergyReading
from hal.board import BoardParams, default_channels
from hal.hardware import open_hardware
from hal.sim.signals import Connected, ThreePhase
from metrology.gapfill import ChipShare, apparent_gain, fill_energy, no_load_va, phase_gain
from metrology.pipeline import Pipeline
from metrology.settings import SYSTEM_TYPES, MetrologySettings

T0_NS = 1_700_000_000_000_000_000
# unbalanced currents and power factors, balanced line voltages (the installation's, before the wiring)
LOADS = {
    "balanced, PF 0.87 lagging": ThreePhase(i_rms=(5.0, 5.0, 5.0), i_angle_deg=(-30.0, -150.0, 90.0)),
    "unbalanced": ThreePhase(i_rms=(5.0, 2.0, 3.5), i_angle_deg=(-10.0, -160.0, 60.0)),
}


def chip_second(source: Connected, system_type: str) -> EnergyReading:
    """The simulated chip's second energy interval (the first holds its filters' start-up)."""
    channels = default_channels()
    hw = open_hardware(BoardParams("sim", channels=channels, sim_noise=False),
                       ChipSettings(channels, wiring=system_type), source=source, realtime=False)
    hw.chip.bring_up()
    hw.stream.start()
    seen = 0
    for _ in range(1000):
        for item in hw.stream.poll():
            if isinstance(item, EnergyReading):
                if seen == 1:
                    return item
                seen += 1
    raise AssertionError("no energy reading")


def sample_path_rates(source: Connected, settings: MetrologySettings) -> dict[str, float]:
    """Total W, var, VA (energy per second) the pipeline books for 3 s of the source (its last whole second)."""
    fs = settings.sample_rate_hz
    pipeline = Pipeline(settings)
    block = 4096
    seconds = []
    for first in range(0, int(3.2 * fs), block):
        x = source.sample_range(first, block, fs)
        seconds += pipeline.feed_values(x, first, T0_NS + round(first * 1e9 / fs)).seconds
    e = seconds[-1].energy
    per_s = 3600.0 / e.duration_s        # Wh in a second -> W
    return {"wh": float(e.net("wh")[3]) * per_s, "varh": float(e.net("varh")[3]) * per_s,
            "vah": float(e.absolute("vah")[3]) * per_s}


def gap_fill_rates(reading: EnergyReading, settings: MetrologySettings) -> dict[str, float]:
    """Total W, var, VA (energy per second) gap fill books for a hole the reading covers."""
    fs = settings.sample_rate_hz
    share = ChipShare(reading.interval_s * fs, reading.wh[:, 0], reading.wh[:, 1], reading.wh[:, 2])
    inc, _ = fill_energy([share], fs, phase_gain(settings), no_load=no_load_va(settings),
                         apparent=apparent_gain(settings))
    per_s = 3600.0 / inc.duration_s
    return {"wh": float(inc.net("wh")[3]) * per_s, "varh": float(inc.net("varh")[3]) * per_s,
            "vah": float(inc.absolute("vah")[3]) * per_s}


@pytest.mark.parametrize("load", LOADS)
@pytest.mark.parametrize("system_type", ["4W-WYE", "3W-WYE", "DELTA"])
def test_gap_fill_books_the_energy_the_sample_path_books_for_the_same_load(system_type, load):
    source = Connected(LOADS[load], system_type)
    settings = MetrologySettings(system_type=system_type)
    want = sample_path_rates(source, settings)
    got = gap_fill_rates(chip_second(source, system_type), settings)
    assert want["vah"] > 1000.0
    assert got["wh"] == pytest.approx(want["wh"], rel=2e-3)
    assert got["varh"] == pytest.approx(want["varh"], rel=1e-2, abs=0.005 * want["vah"])
    assert got["vah"] == pytest.approx(want["vah"], rel=2e-3)


def test_the_apparent_gain_takes_a_delta_meters_line_voltage_products_to_phase_voltage_products():
    s = MetrologySettings(system_type="DELTA", pt_primary=10.0, pt_secondary=1.0, ct_primary=20.0, ct_secondary=1.0)
    np.testing.assert_allclose(apparent_gain(s), [200.0 / np.sqrt(3)] * 3)
    for system_type in SYSTEM_TYPES:
        if system_type != "DELTA":
            s = dataclasses.replace(s, system_type=system_type)
            np.testing.assert_array_equal(apparent_gain(s), np.abs(phase_gain(s)))
