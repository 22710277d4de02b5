"""DNP3 data link and transport layers (IEEE 1815-2012 clauses 8 and 9): frames with their CRCs, a byte-stream
parser that holds at most one frame, and the transport function that joins segments into an application fragment
of bounded size.

A frame is 0x05 0x64, LEN (5 + user data, 5..255), CTRL, DEST and SRC (little-endian), the header CRC, then the
user data in blocks of 16 octets each followed by its CRC. Everything that does not check is dropped and counted;
the parser then hunts for the next start octets, so a damaged frame costs at most the bytes it spans.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from firmware.comms import crc16 as crc16_of

START = b"\x05\x64"
MAX_USER_DATA = 250
MAX_FRAME = 10 + MAX_USER_DATA + 2 * 16        # 292 octets (16 blocks, each with its CRC)
BROADCAST_MIN = 0xFFFD                          # 0xFFFD..0xFFFF: broadcast destinations
SELF_ADDRESS = 0xFFFC

# Control octet
DIR, PRM, FCB, FCV = 0x80, 0x40, 0x20, 0x10
# Primary functions (from the initiating station)
RESET_LINK_STATES, TEST_LINK_STATES, CONFIRMED_USER_DATA, UNCONFIRMED_USER_DATA, REQUEST_LINK_STATUS = 0, 2, 3, 4, 9
# Secondary functions (answers)
ACK, NACK, LINK_STATUS, NOT_SUPPORTED = 0, 1, 11, 15

# Transport header
FIN, FIR = 0x80, 0x40


crc = crc16_of.dnp3      # polynomial 0x3D65, reflected, complemented


def _with_crc(data: bytes) -> bytes:
    return data + struct.pack("<H", crc(data))


@dataclass(frozen=True)
class Frame:
    control: int
    dest: int
    src: int
    data: bytes

    @property
    def function(self) -> int:
        return self.control & 0x0F

    @property
    def primary(self) -> bool:
        return bool(self.control & PRM)

    @property
    def from_master(self) -> bool:
        return bool(self.control & DIR)


def encode(control: int, dest: int, src: int, data: bytes = b"") -> bytes:
    """One frame, user data split into CRC-checked blocks."""
    if len(data) > MAX_USER_DATA:
        raise ValueError(f"{len(data)} octets of user data; a frame carries at most {MAX_USER_DATA}")
    out = bytearray(_with_crc(START + struct.pack("<BBHH", 5 + len(data), control, dest, src)))
    for k in range(0, len(data), 16):
        out += _with_crc(data[k:k + 16])
    return bytes(out)


def frame_length(length_octet: int) -> int:
    """Octets of a whole frame whose LEN octet is ``length_octet`` (>= 5)."""
    user = length_octet - 5
    return 10 + user + 2 * ((user + 15) // 16)


class FrameParser:
    """Bytes in, frames out; holds at most one frame's octets. ``bad`` counts what was dropped."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.bad = 0
        self.good = 0

    @property
    def partial(self) -> bool:
        return bool(self.buffer)

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        buf = self.buffer
        buf += data
        while True:
            start = buf.find(START)
            if start < 0:
                # keep a trailing 0x05 that may begin the next frame
                keep = 1 if buf[-1:] == b"\x05" else 0
                if len(buf) > keep:
                    self.bad += 1 if any(buf[:len(buf) - keep]) else 0
                del buf[:len(buf) - keep]
                break
            if start:
                self.bad += 1
                del buf[:start]
            if len(buf) < 10:
                break
            header = bytes(buf[:10])
            if crc(header[:8]) != struct.unpack_from("<H", header, 8)[0] or header[2] < 5:
                self.bad += 1
                del buf[:2]
                continue
            total = frame_length(header[2])
            if len(buf) < total:
                break
            user = self._blocks(bytes(buf[10:total]), header[2] - 5)
            if user is None:
                self.bad += 1
                del buf[:2]
                continue
            del buf[:total]
            control, dest, src = struct.unpack_from("<BHH", header, 3)
            self.good += 1
            frames.append(Frame(control, dest, src, user))
        return frames

    @staticmethod
    def _blocks(raw: bytes, size: int) -> bytes | None:
        out = bytearray()
        pos = 0
        while len(out) < size:
            n = min(16, size - len(out))
            block = raw[pos:pos + n]
            if crc(block) != struct.unpack_from("<H", raw, pos + n)[0]:
                return None
            out += block
            pos += n + 2
        return bytes(out)

    def clear(self) -> None:
        self.buffer.clear()


class Reassembler:
    """Transport segments in, an application fragment out once FIN arrives (at most ``limit`` octets).

    A segment without FIR before the first, a sequence out of order or a fragment past ``limit`` discards what
    was gathered (clause 8.2.2); a FIR segment always starts afresh."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts = bytearray()
        self.seq: int | None = None
        self.dropped = 0

    def feed(self, segment: bytes) -> bytes | None:
        if not segment:
            self.dropped += 1
            return None
        head, body = segment[0], segment[1:]
        seq = head & 0x3F
        if head & FIR:
            if self.parts:
                self.dropped += 1
            self.parts = bytearray()
        elif self.seq is None or seq != (self.seq + 1) & 0x3F:
            if self.parts or self.seq is None:
                self.dropped += 1
            self.parts = bytearray()
            self.seq = None
            return None
        if len(self.parts) + len(body) > self.limit:
            self.dropped += 1
            self.parts = bytearray()
            self.seq = None
            return None
        self.parts += body
        self.seq = seq
        if head & FIN:
            out = bytes(self.parts)
            self.parts = bytearray()
            self.seq = None
            return out
        return None


def segments(fragment: bytes, first_seq: int) -> tuple[list[bytes], int]:
    """The transport segments (each at most 249 octets of fragment) of ``fragment``; and the next sequence."""
    out = []
    seq = first_seq
    chunks = [fragment[k:k + MAX_USER_DATA - 1] for k in range(0, len(fragment), MAX_USER_DATA - 1)] or [b""]
    for k, chunk in enumerate(chunks):
        head = (FIR if k == 0 else 0) | (FIN if k == len(chunks) - 1 else 0) | seq
        out.append(bytes((head,)) + chunk)
        seq = (seq + 1) & 0x3F
    return out, seq
