"""Serial ports (RS-485 for Modbus RTU and BACnet MS/TP) through pyserial, with settings checked up front.

``open_serial("/dev/ttyAMA0", 19200, "8E1")`` or, in tests, a pyserial URL such as ``"loop://"`` or a
socat pty. Framing is written the way meters' setup menus write it: data bits, parity, stop bits.
"""
from __future__ import annotations

from typing import Any

from hal.errors import BusError, ConfigError

BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 76800, 115200)
FRAMINGS = ("8N1", "8N2", "8E1", "8E2", "8O1", "8O2")


def char_time_s(baud: int, framing: str) -> float:
    """Time of one character on the wire: start bit + data + parity + stop bits."""
    data, parity, stop = int(framing[0]), framing[1], int(framing[2])
    return (1 + data + (parity != "N") + stop) / baud


def open_serial(port: str, baud: int, framing: str = "8N1", timeout_s: float = 0.0, rs485: bool = False) -> Any:
    if baud not in BAUD_RATES:
        raise ConfigError(f"serial {port}: baud rate {baud}; allowed {', '.join(map(str, BAUD_RATES))}")
    if framing not in FRAMINGS:
        raise ConfigError(f"serial {port}: framing {framing!r}; allowed {', '.join(FRAMINGS)}")
    import serial
    import serial.rs485

    parity = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}[framing[1]]
    stop = serial.STOPBITS_ONE if framing[2] == "1" else serial.STOPBITS_TWO
    try:
        port_obj = serial.serial_for_url(port, baudrate=baud, bytesize=serial.EIGHTBITS, parity=parity,
                                         stopbits=stop, timeout=timeout_s, do_not_open=True)
        if rs485 and hasattr(port_obj, "rs485_mode"):
            port_obj.rs485_mode = serial.rs485.RS485Settings()
        port_obj.open()
    except (serial.SerialException, ValueError, OSError) as exc:
        raise BusError(f"serial {port}: cannot open at {baud} {framing}: {exc}") from exc
    return port_obj
