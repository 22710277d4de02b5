"""The revenue registers faulted in the running meter: energy points read 'not available', revenue_fault is
raised, measurements go on, and the registers come back by themselves once the fault clears."""
from __future__ import annotations

import math
import signal
import time

import pytest

from firmware.ipc.snapshot import Snapshot
from firmware.service import instance_name
from hal.errors import IPCError, MeterError
from tests.integration.test_revenue_crash import Meter

WAIT_S = 30.0


def snapshot_values(meter: Meter) -> dict | None:
    try:
        snap = Snapshot.attach(f"{instance_name(meter.run_dir)}.measurements")
    except (IPCError, OSError, ValueError):
        return None
    try:
        return snap.read()
    finally:
        snap.close()


def wait_for(meter: Meter, predicate) -> dict:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        values = snapshot_values(meter)
        if values is not None and predicate(values):
            return values
        time.sleep(0.05)
    raise AssertionError(f"the measurement snapshot never satisfied the condition; last: {values}")


def test_registers_that_cannot_start_read_not_available_until_they_recover(tmp_path):
    meter = Meter(tmp_path)
    meter.data.mkdir(parents=True)
    (meter.data / "revenue").write_text("in the way of the registers' directory\n")
    meter.start(wait=False)
    try:
        faulted = wait_for(meter, lambda v: v["revenue_fault"] == 1.0 and math.isfinite(v["v_an"]))
        for name in ("wh_delivered", "wh_received", "varh_delivered", "vah_delivered"):
            assert math.isnan(faulted[name]), name        # not the metrology pipeline's since-start totals
        assert faulted["revenue_locked"] == 0.0           # the lock input is still read
        with pytest.raises(MeterError, match="revenue registers are not running"):
            meter.call("metrology.demand_reset")
        (meter.data / "revenue").unlink()
        running = wait_for(meter, lambda v: v["revenue_fault"] == 0.0)
        assert math.isfinite(running["wh_delivered"]) and running["wh_delivered"] >= 0.0
        assert meter.call("metrology.registers")["time"] is not None
    finally:
        meter.stop(signal.SIGTERM)
