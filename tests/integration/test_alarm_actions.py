"""Alarm actions end to end on a running meter (acquisition, metrology, recorder, io on the simulated board):
a setpoint alarm with ``capture = true`` picks up and the recorder writes a waveform capture for it, named
..._alarm, readable as COMTRADE, its event naming the alarm; the alarm's output follows it; the pickup reaches
a syslog collector."""
from __future__ import annotations

import socket

import comtrade

from firmware.storage.eventlog import EventLog
from tests.support.io_meter import IoMeter

# v_an of the simulated board's steady source is 230 V: over 100 V picks up within the first seconds; output 1
# is driven by the alarms naming it (alarm_priority 0)
CONFIG = """
[pq]
capture_samples_per_cycle = "128"
capture_pre_cycles = 2
capture_post_cycles = 4
[[alarms.setpoint]]
name = "V1 present"
point = "v_an"
kind = "over"
pickup = 100.0
dropout = 90.0
priority = 200
output = 1
capture = true
[[io.output]]
number = 1
source = "alarm"
alarm_priority = 0
"""


def test_setpoint_alarm_capture_action_writes_a_waveform(tmp_path):
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)      # a syslog collector on loopback
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(30.0)
    syslog = f'[security]\nsyslog_address = "127.0.0.1"\nsyslog_port = {collector.getsockname()[1]}\n'
    meter = IoMeter(tmp_path, CONFIG + syslog, services="acquisition,metrology,recorder,io")
    meter.start()
    try:
        meter.wait(lambda: any(a["name"] == "V1 present" for a in meter.call("io.alarms")["active"]), 90)
        names = meter.wait(lambda: [c for c in meter.call("recorder.captures")["captures"]
                                    if c.endswith("_alarm")], 60)
        assert len(names) == 1, names
        wf = tmp_path / "var" / "waveforms"
        rec = comtrade.load(str(wf / f"{names[0]}.cfg"), str(wf / f"{names[0]}.dat"))
        assert rec.cfg.sample_rates[0][0] == 6400.0 and len(rec.time) >= 6 * 128 - 2
        events = EventLog(tmp_path / "var").read(min_priority=0)
        capture = [e for e in events if e["cause"] == "capture_command" and e["effect"] == names[0]]
        assert len(capture) == 1 and capture[0]["detail"]["reason"] == "V1 present", capture
        assert any(e["cause"] == "alarm_pickup" and e["effect"] == "V1 present" for e in events)
        assert meter.call("io.status")["outputs"][0]["level"]           # the alarm's output action
        # the pickup (priority 200, above [events] syslog_priority 128) reached syslog, facility local0; the
        # Power Up alarm's pickup (priority 128) may come first
        while not (b" alarm_pickup " in (message := collector.recv(4096)) and b"V1 present" in message):
            pass
        assert message.startswith(b"<130>1 ")
    finally:
        meter.stop()
        collector.close()
