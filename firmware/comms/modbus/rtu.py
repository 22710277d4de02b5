"""Modbus RTU framing: CRC-16, the 3.5-character silent interval, and recovery of run-together frames.

Modbus over Serial Line v1.02 §2.5.1.1: a frame ends when the line has been silent for 3.5 character times;
above 19,200 baud the interval is fixed at 1.75 ms. On a multi-drop RS-485 line the meter hears every
request to every unit and every other unit's response, so it must find frame edges by time, not by parsing
(pymodbus' RTU framer documents only "limited support for running the server in parallel with other devices").

This module is pure: callers pass the arrival time of each chunk of bytes. When the operating system delivers
two frames in one read, or a late wake-up makes two frames look like one, the CRC of the run fails; the run is
then split at the lengths the function code allows (request or response layout) wherever a prefix carries a
valid CRC, and anything left that does not check out is dropped, as the standard requires of a bad frame.
"""
from __future__ import annotations

# Bits per character: start + 8 data + parity or second stop + stop (Modbus over Serial Line §2.5.1).
BITS_PER_CHAR = 11
FIXED_T35_S = 1.75e-3          # §2.5.1.1, for baud rates above 19200
MIN_FRAME = 4                  # address, function, CRC (2)
MAX_FRAME = 256                # §2.5.1


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc16(data: bytes | bytearray | memoryview) -> int:
    """Modbus CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    table = _TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def with_crc(body: bytes) -> bytes:
    return body + crc16(body).to_bytes(2, "little")


def crc_ok(frame: bytes | bytearray) -> bool:
    return len(frame) >= MIN_FRAME and crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")


def silent_interval_s(baud: int, bits_per_char: int = BITS_PER_CHAR) -> float:
    """t3.5 for ``baud``: 3.5 characters, or 1.75 ms above 19200 baud."""
    if baud > 19200:
        return FIXED_T35_S
    return 3.5 * bits_per_char / baud


def candidate_lengths(buf: bytes | bytearray) -> set[int]:
    """Frame lengths that a run starting at ``buf[0]`` may have, as a request or as a response."""
    if len(buf) < 2:
        return set()
    fc = buf[1]
    out: set[int] = set()
    if fc & 0x80:
        out.add(5)                                   # exception response
    elif fc in (1, 2, 3, 4, 5, 6):
        out.add(8)                                   # request (and FC 5/6 response)
        if fc <= 4 and len(buf) > 2:
            out.add(5 + buf[2])                      # read response: byte count
    elif fc in (15, 16):
        out.add(8)                                   # response
        if len(buf) > 6:
            out.add(9 + buf[6])                      # request: byte count
    elif fc == 17:
        out.add(4)                                   # request
        if len(buf) > 2:
            out.add(5 + buf[2])                      # response
    elif fc == 43:
        out.add(7)                                   # request (MEI 14)
    return {n for n in out if MIN_FRAME <= n <= len(buf)}


def _first_crc_prefix(buf: bytes) -> int:
    """Length of the shortest prefix of ``buf`` (at least MIN_FRAME bytes) that ends in its own CRC, or 0."""
    crc = 0xFFFF
    table = _TABLE
    limit = min(len(buf), MAX_FRAME) - 2
    for k in range(limit):
        crc = (crc >> 8) ^ table[(crc ^ buf[k]) & 0xFF]
        if k >= 1 and buf[k + 1] == crc & 0xFF and buf[k + 2] == crc >> 8:
            return k + 3
    return 0


def split_frames(run: bytes) -> tuple[list[bytes], int]:
    """The valid frames in a run of bytes bounded by silence, and how many bytes had to be dropped.

    At each position the lengths the function code allows are tried first; a function code this server does
    not know says nothing of its length, so then the shortest prefix that carries a valid CRC is taken."""
    if crc_ok(run) and len(run) <= MAX_FRAME:
        return [run], 0
    frames: list[bytes] = []
    pos = 0
    while pos < len(run):
        rest = run[pos:]
        n = next((n for n in sorted(candidate_lengths(rest)) if crc_ok(rest[:n])), 0) or _first_crc_prefix(rest)
        if not n:
            break
        frames.append(rest[:n])
        pos += n
    else:
        return frames, 0
    # Damaged bytes at ``pos``. The last frame of a run is the one a master waits on: look for a frame that
    # ends the run, whose length its own function code confirms (so noise rarely passes for one).
    for k in range(pos + 1, len(run) - MIN_FRAME + 1):
        tail = run[k:]
        if len(tail) <= MAX_FRAME and len(tail) in candidate_lengths(tail) and crc_ok(tail):
            frames.append(tail)
            return frames, k - pos
    return frames, len(run) - pos


class RtuFramer:
    """Collects bytes into frames bounded by a silent interval of ``t35_s``."""

    def __init__(self, t35_s: float) -> None:
        self.t35_s = t35_s
        self.buffer = bytearray()
        self.last_rx = 0.0
        self.dropped_bytes = 0
        self.bad_frames = 0

    def feed(self, data: bytes, now: float) -> list[bytes]:
        """Add bytes that arrived at ``now``; returns the frames that a silence before them closed."""
        frames = self.flush(now)
        self.buffer += data
        self.last_rx = now
        if len(self.buffer) > 4 * MAX_FRAME:
            # No silence for four frame lengths: noise or a babbling device. Keep the newest bytes only.
            self.dropped_bytes += len(self.buffer) - MAX_FRAME
            del self.buffer[:-MAX_FRAME]
        return frames

    def flush(self, now: float) -> list[bytes]:
        """Frames closed by the silence up to ``now`` (call when the deadline passes with no new bytes)."""
        if not self.buffer or now - self.last_rx < self.t35_s:
            return []
        run = bytes(self.buffer)
        self.buffer.clear()
        frames, dropped = split_frames(run)
        if dropped:
            self.dropped_bytes += dropped
            self.bad_frames += 1
        return frames

    def deadline(self) -> float | None:
        """When the frame being received ends if no more bytes come."""
        return self.last_rx + self.t35_s if self.buffer else None
