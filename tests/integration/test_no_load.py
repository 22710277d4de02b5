"""No creep on a running meter (acquisition and metrology on the simulated board, ADC noise on every channel): with
the nominal voltage and the current circuit open ([simulation] profile no_load) the meter registers no energy,
neither from the samples nor from the chip's accumulators that gap fill books for the samples it lost (the
chip's no-load thresholds and gap fill's creep rule); only V²h counts, the voltage being there. With
[metrology] creep_fraction 0 the ADC noise books Ah, Wh and VAh here; gap fill's own rule against a chip noise
floor above its thresholds: tests/unit/test_metrology_gapfill_service.py."""
from __future__ import annotations

import numpy as np

from firmware.points import points_by_name
from tests.support.io_meter import IoMeter

STALLS = 4                      # interrupts served 40 ms late: past the half-buffer deadline, samples are lost


def test_with_the_current_circuit_open_nothing_is_registered_even_across_gaps(tmp_path):
    registers = sorted(p.name for p in points_by_name().values()
                       if p.kind == "total" and p.area.startswith("energy") and p.name != "energy_fill_wh")
    meter = IoMeter(tmp_path, '[simulation]\nprofile = "no_load"\n', services="acquisition,metrology")

    def read(*names: str) -> dict[str, float]:
        return meter.call("metrology.read", names=",".join(names))["values"]

    def gaps_filled() -> float:
        return read("energy_gaps_filled")["energy_gaps_filled"] or 0.0        # None until first published

    try:
        meter.start()
        meter.wait(lambda: (read("v_an")["v_an"] or 0.0) > 200.0, 60)
        meter.call("acquisition.stall", seconds=0.04, count=STALLS)
        meter.wait(lambda: gaps_filled() >= 1, 60)
        values = read(*registers, "v_an", "energy_fill_wh", "energy_gaps_filled")
    finally:
        meter.stop()
    assert values["energy_gaps_filled"] >= 1, values
    assert values["energy_fill_wh"] == 0.0
    assert any(np.any(np.asarray(values[name]) > 0) for name in registers if name.startswith("v2h")), values
    booked = {name: values[name] for name in registers        # per-rate registers are arrays
              if not name.startswith("v2h") and np.any(np.asarray(values[name]) != 0.0)}
    assert not booked, booked
