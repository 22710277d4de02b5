"""The io service as the supervisor runs it on the simulated board: input edges driven through the simulated
wire with their time stamps, counted and published; SIGKILL and restart without losing a counted pulse;
forced outputs on the wire; the io snapshot the revenue side reads; digital-input alarms and acknowledgement."""
from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest

from firmware.io import SNAPSHOT_NAME
from firmware.io.reader import IoReader
from firmware.ipc.names import MEASUREMENTS, instance_name, shm_name
from firmware.ipc.snapshot import Snapshot
from firmware.points import snapshot_layout
from firmware.storage.eventlog import EventLog
from hal.errors import MeterError
from tests.support.io_meter import IoMeter

DI1, DI2 = 5, 6                 # boards/sim.toml [gpio] digital_inputs
DO1, DO2 = 16, 20               # boards/sim.toml [gpio] digital_outputs
MS = 1_000_000


@pytest.fixture
def meter(tmp_path):
    m = IoMeter(tmp_path, extra_config="""
[[io.input]]
number = 1
mode = "kyz"
ke = 0.5
unit = "m3"
[[io.input]]
number = 2
alarm_priority = 200
""")
    m.start()
    yield m
    m.stop()


def _pulses(meter: IoMeter, pin: int, n: int, period_ms: int = 30) -> None:
    """``n`` clean KYZ half-cycles (each transition one count), stamped ``period_ms`` apart in the past,
    so the whole train arrives at once as a kernel's queued edge events would."""
    t0 = time.monotonic_ns() - n * period_ms * MS - 100 * MS
    # the line falls first: pulled up, closes
    meter.wire.drive_train((pin, k % 2 == 1, t0 + k * period_ms * MS) for k in range(n))


def _input(meter: IoMeter, number: int) -> dict:
    return meter.call("io.status")["inputs"][number - 1]


def test_counts_survive_sigkill_and_bounces_are_filtered(meter):
    _pulses(meter, DI1, 40)
    meter.wait(lambda: _input(meter, 1)["count"] == 40, 10)
    # a bouncing closure: 3 ms spikes inside the 20-ms debounce count nothing more than the one change
    t = time.monotonic_ns() - 500 * MS
    meter.wire.drive_train((DI1, level, t + k * 3 * MS) for k, level in enumerate([False, True, False, True, False]))
    st = meter.wait(lambda: (s := _input(meter, 1))["count"] == 41 and s, 10)
    assert st["bounces"] == 2 and st["total"] == pytest.approx(41 * 0.5)
    pid = meter.call("io.info")["pid"]
    os.kill(pid, signal.SIGKILL)
    # the supervisor restarts it; the counts come back from the record written before they were published
    meter.wait(lambda: meter.call("io.info")["pid"] != pid, 30)
    assert _input(meter, 1)["count"] == 41
    meter.wire.drive(DI1, True)                          # the line opens again: one more KYZ count
    meter.wait(lambda: _input(meter, 1)["count"] == 42, 10)


def test_sigkill_while_pulses_stream_loses_none_that_was_published(meter):
    """Kill in the middle of a stream of edges: whatever count was published before the kill is still there
    after the restart, and the edges after the restart add to it one for one."""
    reader = IoReader(shm_name(instance_name(meter.run_dir), SNAPSHOT_NAME))
    try:
        level = True
        seen = 0
        for _ in range(30):                              # ~30 transitions, 15 ms apart in real time
            level = not level
            meter.wire.drive(DI1, level)
            time.sleep(0.03)
            view = reader.read()
            if view is not None:
                seen = max(seen, view.counts.get(1, 0))
        pid = meter.call("io.info")["pid"]
        view = reader.read()
        seen = max(seen, view.counts.get(1, 0) if view else 0)
        os.kill(pid, signal.SIGKILL)
        meter.wait(lambda: meter.call("io.info")["pid"] != pid, 30)
        after = _input(meter, 1)["count"]
        assert after >= seen and seen >= 25          # nothing published is lost; most edges were counted
        for _ in range(6):
            level = not level
            meter.wire.drive(DI1, level)
            time.sleep(0.03)
        meter.wait(lambda: _input(meter, 1)["count"] == after + 6, 10)
    finally:
        reader.close()


def test_snapshot_time_stamps_forced_output_and_input_alarm_with_acknowledgement(meter):
    reader = IoReader(shm_name(instance_name(meter.run_dir), SNAPSHOT_NAME))
    try:
        stamp = meter.wire.drive(DI2, False)             # close the contact of DI2 (alarm priority 200)
        st = meter.wait(lambda: (s := _input(meter, 2))["active"] and s, 10)
        assert st["since_ns"] == stamp                   # the edge's own time stamp, not when it was read
        view = meter.wait(lambda: (v := reader.read()) is not None and v.levels.get(2) and v, 10)
        assert view.activations[2] == 1 and view.flag("alarm_active")
        alarms = meter.call("io.alarms")
        # highest priority first: the input's alarm, then the meter's Power Up (a unary alarm, until acknowledged)
        assert [(a["name"], a["priority"], a["acknowledged"]) for a in alarms["active"]] == [
            ("Digital In 2", 200, False), ("Power Up", 128, False)]
        assert alarms["alarm_highest_priority"] == 200
        alarm_id = alarms["active"][0]["id"]
        with pytest.raises(MeterError, match="no alarm with id"):
            meter.call("io.ack", ids=[999])
        assert meter.call("io.ack", ids=[alarm_id]) == {"acknowledged": [alarm_id]}
        # the control socket names the caller with its uid and pid after the name it gave
        assert meter.call("io.alarms")["active"][0]["acknowledged_by"].startswith("tester (uid ")
        # forced output: on the wire at once, and released back to its source (none: off)
        assert meter.call("io.force", output=1, state="on")["old"] == "release"
        meter.wait(lambda: any(e[0] == DO1 and e[1] for e in meter.wire.read_outputs()), 5)
        assert meter.call("io.status")["outputs"][0]["level"] is True
        meter.call("io.force", output=1, state="release")
        meter.wait(lambda: any(e[0] == DO1 and not e[1] for e in meter.wire.read_outputs()), 5)
        with pytest.raises(MeterError, match="outputs are 1..4"):
            meter.call("io.force", output=9, state="on")
        # every one of those went to the meter's event log, with the user
        with sqlite3.connect(meter.data / "events.db") as db:
            rows = [(src, cause, effect, user.split(" (uid ")[0]) for src, cause, effect, user in
                    db.execute("SELECT source, cause, effect, user FROM event_log ORDER BY id").fetchall()]
        assert ("alarms", "alarm_pickup", "Digital In 2", "") in rows
        assert ("alarms", "alarm_ack", "Digital In 2", "tester") in rows
        assert ("io", "output_forced", "do1", "tester") in rows
    finally:
        reader.close()


def _published(meter: IoMeter, name: str):
    reader = IoReader(shm_name(instance_name(meter.run_dir), SNAPSHOT_NAME))
    try:
        view = meter.wait(lambda: reader.read(), 10)
        return view.values[name]
    finally:
        reader.close()


def test_pulse_counts_reset_is_persisted_and_power_ups_are_counted(meter):
    """io.reset_counts (BACnet AV1 16498, the web's pulse_count_reset) clears the counts on disk before it
    answers; each start of the meter is one power-up, a restarted service is none."""
    _pulses(meter, DI1, 10)
    meter.wait(lambda: _input(meter, 1)["count"] == 10, 10)
    assert meter.call("io.reset_counts")["old"]["1"] == 10
    assert _input(meter, 1)["count"] == 0 and _input(meter, 1)["total"] == 0
    assert _published(meter, "power_up_count") == 1.0
    pid = meter.call("io.info")["pid"]
    os.kill(pid, signal.SIGKILL)
    meter.wait(lambda: meter.call("io.info")["pid"] != pid, 30)
    assert _input(meter, 1)["count"] == 0                    # the reset was on disk
    meter.wait(lambda: _published(meter, "power_up_count") == 1.0, 10)
    meter.stop()
    meter.start()
    meter.wait(lambda: _published(meter, "power_up_count") == 2.0, 10)
    rows = [r for r in EventLog(meter.data).read(min_priority=0) if r["cause"] == "pulse_counts_reset"]
    assert len(rows) == 1 and rows[0]["user"].startswith("tester ") and rows[0]["detail"]["old"]["1"] == 10


def test_power_up_and_disturbance_unary_alarms_last_until_acknowledged(tmp_path):
    """The meter's start raises Power Up once (a restarted io service does not); a sag counted in the measurement
    snapshot raises Sag at [pq] priority_sag with its residual, holds [alarms] disturbance_output on until it is
    acknowledged, and then ends into the historic list."""
    m = IoMeter(tmp_path, extra_config="""
[alarms]
disturbance_output = 2
[[io.output]]
number = 2
source = "alarm"
alarm_priority = 0
""")
    m.start()
    snap = Snapshot.create(shm_name(instance_name(m.run_dir), MEASUREMENTS), snapshot_layout())
    try:
        active = m.call("io.alarms")["active"]
        assert [(a["name"], a["priority"], a["value"]) for a in active] == [("Power Up", 128, 1.0)]
        power_up = active[0]["id"]
        snap.publish({"pq_sag_count": 4.0, "pq_swell_count": 0.0, "pq_interruption_count": 0.0})   # as it was
        m.wait(lambda: m.call("io.info")["seconds"] >= 1, 15)          # io attached and took the counters
        assert [a["name"] for a in m.call("io.alarms")["active"]] == ["Power Up"]     # no alarm for the past
        snap.publish({"pq_sag_count": 5.0, "pq_swell_count": 0.0, "pq_interruption_count": 0.0,
                      "pq_last_extreme_pct": 41.5})
        sag = m.wait(lambda: [a for a in m.call("io.alarms")["active"] if a["name"] == "Sag"], 10)[0]
        assert sag["priority"] == 255 and sag["value"] == 41.5 and sag["active"]
        m.wait(lambda: any(e[0] == DO2 and e[1] for e in m.wire.read_outputs()), 5)
        assert m.call("io.ack", ids=[sag["id"]]) == {"acknowledged": [sag["id"]]}
        m.wait(lambda: any(e[0] == DO2 and not e[1] for e in m.wire.read_outputs()), 5)
        alarms = m.call("io.alarms")
        assert [a["name"] for a in alarms["active"]] == ["Power Up"]
        assert alarms["historic"][0]["name"] == "Sag" and alarms["historic"][0]["acknowledged"]
        pid = m.call("io.info")["pid"]
        m.call("io.ack", ids=[power_up])
        os.kill(pid, signal.SIGKILL)
        m.wait(lambda: m.call("io.info")["pid"] != pid, 30)
        assert m.call("io.alarms")["active"] == []                  # a service restart is no power-up
        causes = [(e["cause"], e["effect"]) for e in EventLog(m.data).read(min_priority=0)]
        assert ("alarm_pickup", "Sag") in causes and ("alarm_dropout", "Sag") in causes
        assert ("alarm_ack", "Power Up") in causes
    finally:
        snap.close()
        snap.unlink()
        m.stop()
    m.start()
    try:
        assert [a["name"] for a in m.call("io.alarms")["active"]] == ["Power Up"]        # the next start
    finally:
        m.stop()
