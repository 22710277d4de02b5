"""A configuration that puts two protocols on one port or serial line, or closes every network path into the
meter, is refused when it is set (with both options named and what to change); what differs in address or
transport is accepted."""
from __future__ import annotations

import subprocess
import sys

import pytest

from firmware.config.store import ConfigStore
from hal.errors import ConfigError


@pytest.fixture
def store(tmp_path):
    return ConfigStore(tmp_path / "meter.toml", locked=lambda _cfg: False)


@pytest.mark.parametrize("changes,message", [
    ({"web": {"https_port": 502}},
     r"Modbus TCP and HTTPS both listen on TCP port 502 \(\[modbus\] tcp_port on 0.0.0.0, \[web\] https_port on "
     r"0.0.0.0\); give one another port or bind them to different addresses"),
    ({"web": {"http_port": 443}}, r"HTTPS and HTTP redirect both listen on TCP port 443"),
    ({"modbus": {"bind_address": "127.0.0.1", "tcp_port": 8443}, "web": {"https_port": 8443}},
     r"Modbus TCP and HTTPS both listen on TCP port 8443 \(\[modbus\] tcp_port on 127.0.0.1"),
    ({"modbus.rtu": {"enabled": True, "port": "/dev/ttyAMA1"}, "bacnet": {"enabled": True, "mstp_enabled": True}},
     r"Modbus RTU and BACnet MS/TP both use the serial line /dev/ttyAMA1 \(\[modbus.rtu\] port, \[bacnet\] "
     r"mstp_port\); one line carries one protocol"),
    ({"modbus.rtu": {"enabled": True}, "dlms": {"enabled": True}, "dlms.hdlc": {"enabled": True}},
     r"Modbus RTU and DLMS/COSEM HDLC both use the serial line /dev/ttyAMA0 \(\[modbus.rtu\] port, \[dlms.hdlc\] "
     r"port\); one line carries one protocol"),
    ({"dlms": {"enabled": True, "tcp_port": 502}},
     r"Modbus TCP and DLMS/COSEM TCP both listen on TCP port 502"),
    ({"modbus.rtu": {"enabled": True}, "dnp3": {"enabled": True, "serial_enabled": True}},
     r"Modbus RTU and DNP3 serial both use the serial line /dev/ttyAMA0 \(\[modbus.rtu\] port, \[dnp3\] "
     r"serial_port\); one line carries one protocol"),
    ({"bacnet": {"enabled": True, "mstp_enabled": True}, "dnp3": {"enabled": True, "serial_enabled": True,
                                                                  "serial_port": "/dev/ttyAMA1"}},
     r"BACnet MS/TP and DNP3 serial both use the serial line /dev/ttyAMA1"),
    ({"dnp3": {"enabled": True, "tcp_port": 502}}, r"Modbus TCP and DNP3 TCP both listen on TCP port 502"),
    ({"modbus": {"tcp_enabled": False}, "web": {"mode": "disabled"}},
     r"this would close every network path into the meter .* Keep one open"),
    ({"modbus": {"access": "none"}, "web": {"mode": "disabled"}}, r"close every network path"),
])
def test_refused_with_the_reason(store, changes, message):
    with pytest.raises(ConfigError, match=message):
        store.update(changes, user="tester")
    assert not store.path.exists()                         # nothing was saved


@pytest.mark.parametrize("changes", [
    {"bacnet": {"enabled": True, "ip_port": 502}},                              # UDP 502 beside TCP 502
    {"modbus": {"bind_address": "127.0.0.1", "tcp_port": 8443},
     "web": {"bind_address": "127.0.0.2", "https_port": 8443}},                 # two addresses, one port
    {"web": {"mode": "https-only", "http_port": 443}},                          # the HTTP port is not opened
    {"modbus": {"tcp_enabled": False}, "web": {"mode": "disabled"},
     "bacnet": {"enabled": True}},                                              # BACnet/IP stays open
    {"modbus.rtu": {"enabled": True}, "bacnet": {"enabled": True, "mstp_enabled": True}},   # two lines
    {"modbus.rtu": {"enabled": True}, "dlms": {"enabled": True},
     "dlms.hdlc": {"enabled": True, "port": "/dev/ttyAMA2"}},                  # DLMS on a line of its own
    {"modbus.rtu": {"enabled": True}, "dlms.hdlc": {"enabled": True}},        # DLMS itself off: no HDLC opened
])
def test_accepted(store, changes):
    store.update(changes, user="tester")


def test_meter_config_set_says_why(tmp_path, subprocess_env):
    run = subprocess.run([sys.executable, "-m", "firmware.cli", "config", "set", "--config", str(tmp_path / "m.toml"),
                          "--user", "me", "bacnet.enabled=true", "bacnet.ip_enabled=true", "modbus.tcp_enabled=false",
                          "web.mode=disabled", "bacnet.ip_enabled=false"],
                         capture_output=True, text=True, env=subprocess_env)
    assert run.returncode == 1 and "close every network path" in run.stderr, run.stderr
