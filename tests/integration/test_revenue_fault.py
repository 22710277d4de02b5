"""The revenue registers faulted in the running meter: energy points read 'not available', revenue_fault is
raised, measurements go on, and the registers come back by themselves once the fault clears."""
from __future__ import annotations

import math
import signal

import pytest

from hal.errors import MeterError
from tests.integration.test_revenue_crash import Meter, wait_snapshot


def test_registers_that_cannot_start_read_not_available_until_they_recover(tmp_path):
    meter = Meter(tmp_path)
    meter.data.mkdir(parents=True)
    (meter.data / "revenue").write_text("in the way of the registers' directory\n")
    meter.start(wait=False)
    try:
        faulted = wait_snapshot(meter, lambda v: v["revenue_fault"] == 1.0 and math.isfinite(v["v_an"]))
        for name in ("wh_delivered", "wh_received", "varh_delivered", "vah_delivered"):
            assert math.isnan(faulted[name]), name        # not the metrology pipeline's since-start totals
        assert faulted["revenue_locked"] == 0.0           # the lock input is still read
        with pytest.raises(MeterError, match="revenue registers are not running"):
            meter.call("metrology.demand_reset")
        (meter.data / "revenue").unlink()
        running = wait_snapshot(meter, lambda v: v["revenue_fault"] == 0.0)
        assert math.isfinite(running["wh_delivered"]) and running["wh_delivered"] >= 0.0
        assert meter.call("metrology.registers")["time"] is not None
    finally:
        meter.stop(signal.SIGTERM)
