"""High-speed setpoints: a generated 3-cycle dip run through the real metrology pipeline, whose half-cycle r.m.s.
records go onto the real PQ ring, read there as the io service reads them (``firmware.io.halfcycles``) and
evaluated by the alarm manager; the same setpoint on the one-second value does not see the dip."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from firmware.config.store import load_file
from firmware.io import build
from firmware.io.halfcycles import HalfCycleFeed
from firmware.ipc.names import PQ_EVENTS, instance_name, shm_name
from hal.errors import ConfigError
from hal.sim.signals import VoltageEvent, steady
from tests.support.recorder_feed import Feeder, write_config

SETPOINTS = """
[[alarms.setpoint]]
name = "V1 dip fast"
point = "v_an"
kind = "under"
by = "percent"
pickup = 85.0
dropout = 90.0
high_speed = true
[[alarms.setpoint]]
name = "V1 dip 1 s"
point = "v_an"
kind = "under"
by = "percent"
pickup = 85.0
dropout = 90.0
"""


def test_a_three_cycle_dip_picks_up_the_high_speed_setpoint_only(tmp_path):
    config = load_file(write_config(tmp_path, SETPOINTS + '[metrology]\nnominal_voltage = 230.0\n'))
    mgr = build.alarms(config, {})
    fast, slow = mgr.alarms[0], mgr.alarms[1]
    assert (fast.name, slow.name) == ("V1 dip fast", "V1 dip 1 s") and mgr.high_speed
    start = 2.0
    sig = dataclasses.replace(steady(230.0, 5.0, 20.0), events=(VoltageEvent("sag", 0.7, start, 0.06, "A", 0.0),))
    feeder = Feeder(tmp_path / "run", sig)
    feed = HalfCycleFeed(shm_name(instance_name(tmp_path / "run"), PQ_EVENTS))
    try:
        assert feed.read() == []                # attaches at the ring's head
        feeder.feed(4.0, speed=40.0)
        batches = feed.read()
        assert feed.lost == 0 and len(batches) == feed.batches > 10
        events = [e for t, urms in batches for e in mgr.evaluate_half_cycles(t, urms)]
        t = np.concatenate([b[0] for b in batches])
        va = np.concatenate([b[1][:, 0] for b in batches])
    finally:
        feed.close()
        feeder.close()
    t0 = feeder.t0_ns / 1e9
    assert [(e.alarm.name, e.what) for e in events] == [("V1 dip fast", "pickup"), ("V1 dip fast", "dropout")]
    pickup, dropout = events
    # picked up within the dip's first cycle (Urms(1/2) is a one-cycle window refreshed each half cycle), its
    # value the residual in % of the nominal; out within a cycle after the dip's end
    assert start <= pickup.t - t0 <= start + 0.02 + 1e-3
    assert pickup.alarm.value == pytest.approx(70.0, abs=1.5)
    assert start + 0.06 <= dropout.t - t0 <= start + 0.06 + 0.02 + 1e-3
    # the one-second r.m.s. of the second holding the dip stays above the pickup: the 1-s setpoint never sees it
    second = (t - t0 >= 2.0) & (t - t0 < 3.0)
    one_s = float(np.sqrt(np.mean(np.square(va[second]))))
    assert 100 * one_s / 230.0 > 85.0
    assert mgr.evaluate({"v_an": one_s}, t0 + 3.0) == [] and not slow.active


def test_high_speed_needs_a_point_with_half_cycle_values(tmp_path):
    config = load_file(write_config(tmp_path, '[[alarms.setpoint]]\nname = "f"\npoint = "frequency"\n'
                                              'kind = "over"\npickup = 51.0\ndropout = 50.9\nhigh_speed = true\n'))
    with pytest.raises(ConfigError, match="'f': high_speed = true needs a point with half-cycle r.m.s. values "
                                          r"\(v_an, .*i_c\), not 'frequency'"):
        build.alarms(config, {})


def test_the_io_service_picks_up_a_high_speed_setpoint_on_a_simulated_dip(tmp_path):
    """End to end on a running meter: the simulated board's 100-ms dip to 60 % on phase A (metrology's half-cycle
    values on the PQ ring, read by the io service) picks up the high-speed setpoint and not the 1-s one, and
    raises the Sag disturbance alarm (metrology's sag counter) with its residual until it is acknowledged."""
    from tests.support.io_meter import IoMeter

    meter = IoMeter(tmp_path, SETPOINTS + "[simulation]\nprofile = \"steady\"\ndips = [10.0]\n",
                    services="acquisition,metrology,io")
    meter.start()
    try:
        historic = meter.wait(lambda: (h := meter.call("io.alarms")["historic"]) and h, 90)
        assert [a["name"] for a in historic] == ["V1 dip fast"]
        assert 55.0 <= historic[0]["value"] <= 65.0                  # the residual, in % of the nominal
        assert 0.09 <= historic[0]["duration_s"] <= 0.13              # the 100-ms dip, to a half cycle or so
        assert meter.call("io.status")["half_cycle_batches"] > 0
        assert not any(a["name"] == "V1 dip 1 s" for a in meter.call("io.alarms")["active"])
        sag = meter.wait(lambda: [a for a in meter.call("io.alarms")["active"] if a["name"] == "Sag"], 30)[0]
        assert sag["priority"] == 255 and 55.0 <= sag["value"] <= 65.0, sag          # [pq] priority_sag, residual
        meter.call("io.ack", ids=[sag["id"]])
        meter.wait(lambda: any(a["name"] == "Sag" and a["acknowledged"] for a in meter.call("io.alarms")["historic"]),
                   10)
        assert not any(a["name"] == "Sag" for a in meter.call("io.alarms")["active"])
    finally:
        meter.stop()
