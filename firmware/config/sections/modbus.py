"""Modbus server options: TCP port and pool, RTU serial line, access (ION7400 manual "Modbus", SPEC §7)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from firmware.config.schema import Bool, Duration, Enum, Int, IPAddress, Kind, ListOf, Option, Section, Str

# Serial settings the ION7400's RS-485 port offers (SPEC §7).
BAUD_RATES = (2400, 4800, 9600, 19200, 38400, 57600, 115200)
FRAMINGS = ("8N1", "8N2", "8E1", "8E2", "8O1", "8O2")


@dataclass(frozen=True)
class IntChoice(Kind):
    """An integer from a fixed list (baud rates)."""

    choices: tuple[int, ...]

    def parse(self, raw: Any) -> int:
        if isinstance(raw, bool) or raw not in self.choices:
            raise ValueError(f"{raw!r} is not one of the allowed values; allowed {self.allowed()}")
        return int(raw)

    def allowed(self) -> str:
        return ", ".join(str(c) for c in self.choices)


# [modbus] user_map entries: the form here, the meaning in firmware/comms/modbus/usermap.py (checked at save).
USER_MAP_ENTRY = r"[0-9]{1,5}=[a-z][a-z0-9_]*(\[[0-9]{1,4}\])?(:[a-z0-9]+)?"
USER_MAP_TEXT = "ADDRESS=POINT[:FORMAT], e.g. 40000=v_an"
USER_MAP_MAX = 256

SECTIONS = [
    Section("modbus", [
        Option("access", Enum("none", "read-only", "read-write"), "read-only",
               "Access to the meter's register map: none (every data request refused with exception 02), "
               "read-only, or read-write (command registers and coils run demand reset, energy reset, "
               "billing-period reset and demand sync; revenue resets still obey the revenue lock).",
               privilege="security"),
        Option("tcp_enabled", Bool(), True, "Serve Modbus TCP."),
        Option("tcp_port", Int(1, 65535), 502,
               "Modbus TCP port. Ports below 1024 need the meter's service privileges; `make run` uses 5020."),
        Option("bind_address", IPAddress(), "0.0.0.0",
               "Address the TCP server listens on (0.0.0.0: every interface; 127.0.0.1: this host only)."),
        Option("max_connections", Int(1, 32), 8,
               "Simultaneous TCP connections; one more is closed as soon as it is accepted."),
        Option("max_connections_per_address", Int(1, 32), 4,
               "Simultaneous TCP connections from one IP address; more are closed as soon as they are accepted."),
        Option("idle_timeout", Duration(1, 86400), 100.0,
               "A TCP connection that sends no complete request for this long is closed.", "s"),
        Option("frame_timeout", Duration(0.1, 60), 2.0,
               "A request frame must be complete this long after its first byte, or the connection is closed "
               "(bytes trickling in do not extend it).", "s"),
        Option("write_timeout", Duration(1, 600), 10.0,
               "A client that takes none of its pending replies for this long is closed (the server stops "
               "reading from it as soon as 64 KiB of replies wait).", "s"),
        Option("command_timeout", Duration(0.1, 60), 5.0,
               "Longest wait for the owning service to carry out a command before answering exception 04.",
               "s"),
        Option("user_map", ListOf(Str(64, USER_MAP_ENTRY, USER_MAP_TEXT), 0, USER_MAP_MAX), (),
               "The user map: quantities of the catalogue at addresses you choose, each "
               "\"ADDRESS=POINT[:FORMAT]\" (\"40000=v_an\", \"40002=harmonics_v_an[5]\", \"40004=wh_delivered:s64\"; "
               "float32 by default, in the point's unit), outside the fixed blocks of docs/modbus.md; served on "
               "TCP and RTU alike."),
    ], "Modbus TCP server and the register map's access (docs/modbus.md lists the registers)."),
    Section("modbus.rtu", [
        Option("enabled", Bool(), False, "Serve Modbus RTU on the serial port."),
        Option("port", Str(255), "/dev/ttyAMA0", "Serial device of the RS-485 transceiver.", local=True),
        Option("baud", IntChoice(BAUD_RATES), 19200, "Baud rate.", "bit/s"),
        Option("framing", Enum(*FRAMINGS), "8N1", "Data bits, parity (None, Even, Odd) and stop bits."),
        Option("unit", Int(1, 247), 1, "Unit id on the line; the meter also answers 248 when it is the only "
               "device, and carries out broadcasts (unit 0) of FC 16 without answering."),
        Option("rs485", Bool(), True, "Let the kernel drive the transceiver's direction (RTS) for RS-485."),
    ], "Modbus RTU server on the RS-485 port."),
]
