"""The meter-shop accuracy test through the KYZ pulse output (``meter hil pulses``): the whole meter on the
simulated board with a steady load (3 x 230 V x 5 A at PF 1: 3450 W), the io service pulsing Wh delivered at
Kt = 0.1 Wh (9.6 pulses a second, under the 25 Hz cap), counted on the simulated wire."""
from __future__ import annotations

import os
import sqlite3

import pytest

from firmware.revenue.gapfill import HOLD_MAX_S
from firmware.ipc import names
from firmware.ipc.names import instance_name, shm_name
from firmware.ipc.snapshot import Snapshot
from firmware.revenue.engine import STATUS_BITS
from tests.conftest import REPO
from tests.support.io_meter import IoMeter
from firmware.cli.hil_pulses import count_pulses, reference_power

KT_WH = 0.1
# IEC 62053-22 class 0.2S: +-0.2 % at PF 1 (SPEC §2) between the registered and the reference energy
CLASS_PCT = 0.2
# A published register may hold back the seconds around a sample gap until the chip's record of the hole arrives,
# at most HOLD_MAX_S: that much energy may be missing (or arrive) at each end of the window.
BOUNDARY_S = HOLD_MAX_S
PULSE_CONFIG = f"""
[simulation]
profile = "steady"
[[io.output]]
number = 1
source = "energy"
quantity = "wh"
integration = "delivered"
kt = {KT_WH}
mode = "kyz"
pulse_width = 0.005
[[io.output]]
number = 2
source = "alarm"
alarm_priority = 0
[[alarms.setpoint]]
name = "Over kW"
point = "p_total"
pickup = 3000.0
dropout = 2900.0
pickup_delay = 2
priority = 200
output = 2
capture = true
"""


def _check(tmp_path, seconds: int) -> None:
    meter = IoMeter(tmp_path, PULSE_CONFIG, services="acquisition,metrology,io")
    meter.start()
    try:
        report = count_pulses(meter.config, REPO / "boards" / "sim.toml", 1, seconds, meter.run_dir)
        _check_alarm_path(meter)
    finally:
        meter.stop()
    # measurement time between the two registers: the requested time less how far metrology lags behind at
    # the end (seconds are published when their samples are processed; 8 s behind at load average 12)
    assert report.seconds >= 0.9 * seconds
    # what left on the wire is exactly what the io service gave, and that equals the registered energy within
    # one pulse (the quantisation of the count)
    assert report.pulses == report.given, report
    assert abs(report.pulses - report.registered_pulses) < 1.0, report
    # and the registered energy is the signal's own within the accuracy class, plus the held-back seconds at the
    # window's ends: while the registers hold back seconds around a sample gap (firmware/revenue/gapfill.py, a
    # loaded host loses samples) a published register may be up to HOLD_MAX_S behind the second it is published
    # with (measured: +0.000 % over 120 s on a quiet host, +1.8 % over 29 s at load average 12, -11.9 % over 30 s
    # while a second test run loaded the host; the 10-min run bounds it to 0.2 % + 0.8 %)
    assert report.reference == pytest.approx(3450.0 * report.seconds / 3600.0, rel=1e-9)
    assert abs(report.registered_error_pct) < CLASS_PCT + 100.0 * BOUNDARY_S / report.seconds, report
    assert report.pulses > 9 * seconds


def test_reference_power_of_the_steady_profile(tmp_path):
    from firmware.config import meter_schema
    cfg = meter_schema().load({"simulation": {"profile": "steady"}})
    assert reference_power(cfg, "wh") == pytest.approx(3 * 230.0 * 5.0, rel=1e-12)


def test_pulse_count_equals_registered_energy_within_one_pulse(tmp_path):
    _check(tmp_path, 30)


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.skipif(not os.environ.get("METER_SOAK"), reason="the 10-min run: METER_SOAK=1 (CI runs the 30-s one)")
def test_pulse_count_equals_registered_energy_within_one_pulse_over_10_min(tmp_path):
    _check(tmp_path, 600)


def _check_alarm_path(meter: IoMeter) -> None:
    """The setpoint alarm on the measured 3450 W (pickup 3000 W after 2 s), its output, its event, the capture
    request that nobody serves here (tolerated), and the io points the metrology service republishes."""
    alarms = meter.wait(lambda: (a := meter.call("io.alarms"))["alarm_active"] and a, 30)
    row = alarms["active"][0]
    assert row["name"] == "Over kW" and row["value"] == pytest.approx(3450.0, rel=CLASS_PCT / 100)
    assert meter.call("io.status")["outputs"][1]["level"] is True                  # DO2 follows the alarm
    with sqlite3.connect(meter.data / "events.db") as db:
        rows = db.execute("SELECT priority, cause, effect FROM event_log WHERE source = 'alarms'").fetchall()
    assert (200, "alarm_pickup", "Over kW") in rows
    assert meter.call("io.info")["captures"] == 1                # asked for; no recorder runs: refused, logged
    name = shm_name(instance_name(meter.run_dir), names.MEASUREMENTS)
    snap = Snapshot.attach(name)
    try:
        def republished():
            v = snap.read()
            return v["alarm_active"] == 1.0 and v["do_pulses"][0] > 0 and v["do_state"][1] == 1.0 and v
        values = meter.wait(republished, 10)
        assert int(values["status_word"]) & STATUS_BITS["alarm_active"]
        assert values["alarm_list_priority"][0] == 200.0
    finally:
        snap.close()
