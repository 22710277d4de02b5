"""MS/TP frames (ASHRAE 135 Clause 9.3): preamble 55 FF, frame type, destination, source, length, header
CRC-8, data, data CRC-16; and the receiver that finds frames in a byte stream.

The receiver is written for a hostile line: a header whose CRC fails, a length over the 501 octets MS/TP
allows, or a data CRC that fails drops the frame and hunts for the next preamble; a frame that stops
arriving for ``FRAME_ABORT_S`` is dropped (Clause 9.5.4, Tframe_abort), so no partial frame holds memory.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

PREAMBLE = b"\x55\xff"
BROADCAST = 255
MAX_DATA_OCTETS = 501             # Clause 9.3: Data 0 to 501 octets
HEADER_CRC_RESIDUE = 0x55         # Annex G.1: CRC-8 over header and its CRC
DATA_CRC_RESIDUE = 0xF0B8         # Annex G.2: CRC-16 over data and its CRC
# Tframe_abort: 60 bit times; the floor covers a pty's and a USB adapter's delivery in bursts.
FRAME_ABORT_BITS = 60
FRAME_ABORT_FLOOR_S = 0.1


class FrameType(enum.IntEnum):
    TOKEN = 0
    POLL_FOR_MASTER = 1
    REPLY_TO_POLL_FOR_MASTER = 2
    TEST_REQUEST = 3
    TEST_RESPONSE = 4
    DATA_EXPECTING_REPLY = 5
    DATA_NOT_EXPECTING_REPLY = 6
    REPLY_POSTPONED = 7


def crc8(byte: int, crc: int) -> int:
    """Header CRC step (Annex G.1, polynomial x^8 + x^7 + 1)."""
    crc ^= byte
    crc ^= (crc << 1) ^ (crc << 2) ^ (crc << 3) ^ (crc << 4) ^ (crc << 5) ^ (crc << 6) ^ (crc << 7)
    return (crc & 0xFE) ^ ((crc >> 8) & 1)


def crc16(byte: int, crc: int) -> int:
    """Data CRC step (Annex G.2, CRC-CCITT x^16 + x^12 + x^5 + 1, LSB first)."""
    low = (crc & 0xFF) ^ byte
    crc = (crc >> 8) ^ (low << 8) ^ (low << 3) ^ (low << 12) ^ (low >> 4) ^ (low & 0x0F) ^ ((low & 0x0F) << 7)
    return crc & 0xFFFF


def header_crc(header: bytes) -> int:
    crc = 0xFF
    for b in header:
        crc = crc8(b, crc)
    return ~crc & 0xFF


def data_crc(data: bytes) -> bytes:
    crc = 0xFFFF
    for b in data:
        crc = crc16(b, crc)
    crc = ~crc & 0xFFFF
    return bytes((crc & 0xFF, crc >> 8))


@dataclass(frozen=True)
class Frame:
    type: int
    destination: int
    source: int
    data: bytes = b""

    def encode(self) -> bytes:
        if len(self.data) > MAX_DATA_OCTETS:
            raise ValueError(f"MS/TP frame data is {len(self.data)} octets; at most {MAX_DATA_OCTETS}")
        header = bytes((self.type, self.destination, self.source, len(self.data) >> 8, len(self.data) & 0xFF))
        out = PREAMBLE + header + bytes((header_crc(header),))
        if self.data:
            out += self.data + data_crc(self.data)
        return out


def frame_abort_s(baud: int) -> float:
    return max(FRAME_ABORT_BITS / baud, FRAME_ABORT_FLOOR_S)


class Receiver:
    """Bytes in, whole valid frames out (Clause 9.5.4's receive state machine, reduced to its decisions)."""

    def __init__(self, abort_s: float) -> None:
        self.abort_s = abort_s
        self.buf = bytearray()
        self.last_byte_s = 0.0
        self.counters = {"frames": 0, "header_crc": 0, "data_crc": 0, "too_long": 0, "aborted": 0, "noise": 0}

    def feed(self, data: bytes, now: float) -> list[Frame]:
        if self.buf and now - self.last_byte_s > self.abort_s:
            self.counters["aborted"] += 1
            self.buf.clear()
        self.last_byte_s = now
        self.buf += data
        out: list[Frame] = []
        while True:
            frame, consumed = self._next()
            if consumed == 0:
                break
            del self.buf[:consumed]
            if frame is not None:
                out.append(frame)
        return out

    def _next(self) -> tuple[Frame | None, int]:
        """(frame or None, bytes consumed); (None, 0) when more bytes are needed."""
        buf = self.buf
        start = buf.find(PREAMBLE)
        if start < 0:
            keep = 1 if buf.endswith(PREAMBLE[:1]) else 0
            if len(buf) - keep:
                self.counters["noise"] += 1
            return None, len(buf) - keep
        if start:
            self.counters["noise"] += 1
            return None, start
        if len(buf) < 8:
            return None, 0
        header = bytes(buf[2:7])
        crc = 0xFF
        for b in buf[2:8]:
            crc = crc8(b, crc)
        if crc != HEADER_CRC_RESIDUE:
            self.counters["header_crc"] += 1
            return None, 2                          # hunt for the next preamble after this one
        length = (header[3] << 8) | header[4]
        if length > MAX_DATA_OCTETS:
            self.counters["too_long"] += 1
            return None, 8
        if length == 0:
            self.counters["frames"] += 1
            return Frame(header[0], header[1], header[2]), 8
        if len(buf) < 8 + length + 2:
            return None, 0
        crc16v = 0xFFFF
        for b in buf[8:8 + length + 2]:
            crc16v = crc16(b, crc16v)
        if crc16v != DATA_CRC_RESIDUE:
            self.counters["data_crc"] += 1
            return None, 8 + length + 2
        self.counters["frames"] += 1
        return Frame(header[0], header[1], header[2], bytes(buf[8:8 + length])), 8 + length + 2
