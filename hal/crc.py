"""CRC-16-CCITT as the ADE9000 computes it for CRC_SPI and CRC_RSLT.

Polynomial 0x1021, initial value 0xFFFF, bytes fed most significant first, no reflection, no final
XOR (ADE9000 TRM UG-1098, "ADE9000 CRC Algorithm"; parameters kept in the register map).
"""
from __future__ import annotations

from hal.regmap import regmap


def _table(poly: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return tuple(table)


_POLY = int(regmap().spi["crc_poly"])
_INIT = int(regmap().spi["crc_init"])
_TABLE = _table(_POLY)


def crc16_ccitt(data: bytes | bytearray | memoryview, crc: int = _INIT) -> int:
    for byte in bytes(data):
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc
