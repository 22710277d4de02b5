"""Serial port helper: settings checked, a real pyserial loopback port carries bytes."""
import pytest

from hal.errors import ConfigError
from hal.serialport import char_time_s, open_serial


def test_loopback_port_round_trip():
    port = open_serial("loop://", 19200, "8E1", timeout_s=0.2)
    try:
        port.write(b"\x01\x03\x00\x00")
        assert port.read(4) == b"\x01\x03\x00\x00"
        assert port.parity == "E" and port.baudrate == 19200
    finally:
        port.close()


def test_bad_settings_name_what_is_allowed():
    with pytest.raises(ConfigError, match="baud rate 12345; allowed 1200, 2400"):
        open_serial("loop://", 12345)
    with pytest.raises(ConfigError, match="framing '7N1'; allowed 8N1, 8N2"):
        open_serial("loop://", 9600, "7N1")
    assert char_time_s(9600, "8E1") == pytest.approx(11 / 9600)
