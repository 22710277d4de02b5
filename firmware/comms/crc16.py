"""Reflected CRC-16s of the serial protocols, table-driven: Modbus RTU (polynomial 0xA001 reflected, initial
0xFFFF), DNP3 link frames (0xA6BC reflected, i.e. 0x3D65, initial 0, complemented) and the HDLC frame check
sequence of DLMS (CRC-16/X.25: 0x8408 reflected, initial 0xFFFF, complemented)."""
from __future__ import annotations

from typing import Callable

Data = bytes | bytearray | memoryview


def table(poly_reflected: int) -> tuple[int, ...]:
    """The 256 entries of a reflected CRC-16's table, for a CRC run byte by byte."""
    out = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly_reflected if crc & 1 else crc >> 1
        out.append(crc)
    return tuple(out)


def reflected(entries: tuple[int, ...], initial: int, xor_out: int) -> Callable[[Data], int]:
    """The CRC function of one reflected CRC-16 given its table: ``f(data) -> int``."""
    def crc(data: Data) -> int:
        value = initial
        for byte in data:
            value = (value >> 8) ^ entries[(value ^ byte) & 0xFF]
        return value ^ xor_out
    return crc


MODBUS_TABLE = table(0xA001)
modbus = reflected(MODBUS_TABLE, 0xFFFF, 0x0000)
dnp3 = reflected(table(0xA6BC), 0x0000, 0xFFFF)
x25 = reflected(table(0x8408), 0xFFFF, 0xFFFF)
