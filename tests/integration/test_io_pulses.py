"""The meter-shop accuracy test through the KYZ pulse output (``meter hil pulses``): the whole meter on the
simulated board with a steady load (3 x 230 V x 5 A at PF 1: 3450 W), the io service pulsing Wh delivered at
Kt = 0.1 Wh (9.6 pulses a second, under the 25 Hz cap), counted on the simulated wire."""
from __future__ import annotations

import pytest

from tests.conftest import REPO
from tests.support.io_meter import IoMeter
from tools.hil_pulses import count_pulses, reference_power

KT_WH = 0.1
# IEC 62053-22 class 0.2S: +-0.2 % at PF 1 (SPEC §2) between the registered and the reference energy
CLASS_PCT = 0.2
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
"""


def _check(tmp_path, seconds: int) -> None:
    meter = IoMeter(tmp_path, PULSE_CONFIG, services="acquisition,metrology,io")
    meter.start()
    try:
        report = count_pulses(meter.config, REPO / "boards" / "sim.toml", 1, seconds, meter.run_dir)
    finally:
        meter.stop()
    assert report.seconds >= seconds - 1.0
    # what left on the wire is exactly what the io service gave, and that equals the registered energy within
    # one pulse (the quantisation of the count)
    assert report.pulses == report.given, report
    assert abs(report.pulses - report.registered_pulses) < 1.0, report
    # and the registered energy is the signal's own within the accuracy class
    assert report.reference == pytest.approx(3450.0 * report.seconds / 3600.0, rel=1e-9)
    assert abs(report.registered_error_pct) < CLASS_PCT, report
    assert report.pulses > 9 * seconds


def test_reference_power_of_the_steady_profile(tmp_path):
    from firmware.config import meter_schema
    cfg = meter_schema().load({"simulation": {"profile": "steady"}})
    assert reference_power(cfg, "wh") == pytest.approx(3 * 230.0 * 5.0, rel=1e-12)


def test_pulse_count_equals_registered_energy_within_one_pulse(tmp_path):
    _check(tmp_path, 30)


@pytest.mark.slow
def test_pulse_count_equals_registered_energy_within_one_pulse_over_10_min(tmp_path):
    _check(tmp_path, 600)
