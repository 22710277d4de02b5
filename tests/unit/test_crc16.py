"""The serial protocols' CRC-16s against the check values of the CRC catalogue (the CRC of b"123456789") and a
frame of each standard."""
from __future__ import annotations

from firmware.comms import crc16


def test_check_values_of_each_crc():
    assert crc16.modbus(b"123456789") == 0x4B37      # CRC-16/MODBUS
    assert crc16.dnp3(b"123456789") == 0xEA82        # CRC-16/DNP
    assert crc16.x25(b"123456789") == 0x906E         # CRC-16/X-25 (IBM-SDLC)


def test_a_modbus_request_ends_in_its_crc_low_byte_first():
    # read holding registers 0..1 of slave 1: 01 03 00 00 00 01, CRC 84 0A on the wire
    assert crc16.modbus(bytes.fromhex("010300000001")).to_bytes(2, "little") == bytes.fromhex("840A")
