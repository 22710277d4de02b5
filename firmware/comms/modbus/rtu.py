"""Modbus RTU framing: CRC-16, the 3.5-character silent interval, and recovery of run-together frames.

Modbus over Serial Line v1.02 §2.5.1.1: a frame ends when the line has been silent for 3.5 character times;
above 19,200 baud the interval is fixed at 1.75 ms. On a multi-drop RS-485 line the meter hears every
request to every unit and every other unit's response, so it must find frame edges by time, not by parsing
(pymodbus' RTU framer documents only "limited support for running the server in parallel with other devices").

This module is pure: callers pass the arrival time of each chunk of bytes. When the operating system delivers
two frames in one read, or a late wake-up makes two frames look like one, the CRC of the run fails; the run is
then split at the lengths the function code allows (request or response layout) wherever a prefix carries a
valid CRC, and anything left that does not check out is dropped, as the standard requires of a bad frame.

The opposite error, a pause inside a frame that looks like a silent interval (a pseudo-terminal, a USB
converter, or the reader scheduled late on a busy host), would drop a good frame in two halves. So a run
that ends before the length its function code announces is held for up to ``INCOMPLETE_HOLD_S`` for the
rest to arrive. If what arrives next does not complete a frame from the held bytes, the held bytes are
dropped on their own and the new bytes framed afresh, so a damaged frame can never swallow the good
frames behind it. A run of complete length whose CRC fails is dropped at once.
"""
from __future__ import annotations


from firmware.comms import crc16 as crc16_of

# Bits per character: start + 8 data + parity or second stop + stop (Modbus over Serial Line §2.5.1).
BITS_PER_CHAR = 11
FIXED_T35_S = 1.75e-3          # §2.5.1.1, for baud rates above 19200
MIN_FRAME = 4                  # address, function, CRC (2)
MAX_FRAME = 256                # §2.5.1
# Longest pause inside a frame that is bridged when the frame is visibly incomplete. Several scheduler
# quanta on a loaded Linux host; much shorter than any master's response timeout (typically 1 s).
INCOMPLETE_HOLD_S = 0.05


crc16 = crc16_of.modbus   # sent low byte first


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
    elif fc == 100 and len(buf) > 2:
        out.add(5 + buf[2])                          # read scattered, request and response: byte count
    return {n for n in out if MIN_FRAME <= n <= len(buf)}


def is_incomplete(buf: bytes | bytearray) -> bool:
    """True if ``buf`` can only be the start of a frame: every length its function code allows is longer."""
    if len(buf) < MIN_FRAME:
        return True
    fc = buf[1]
    if fc in (1, 2, 3, 4) and len(buf) < 8:
        return True                                   # shorter than a request; a response's count is in buf[2]
    if fc in (15, 16) and len(buf) < 8:
        return True
    if fc == 43 and len(buf) < 7:
        return True
    if fc == 100 and len(buf) < 5 + buf[2] and not _first_crc_prefix(bytes(buf)):
        return True                                   # read scattered: its byte count says how much follows
    if fc in (15, 16) and len(buf) >= 7 and len(buf) < 9 + buf[6] and not crc_ok(buf[:8]):
        return True                                   # a write request still receiving its data
    # a read response still receiving its data
    return fc <= 4 and len(buf) >= 3 and 5 + buf[2] > 8 and len(buf) < 5 + buf[2] and not crc_ok(buf[:8])


def starts_with_frame(buf: bytes) -> bool:
    return any(crc_ok(buf[:n]) for n in candidate_lengths(buf)) or _first_crc_prefix(buf) > 0


def _first_crc_prefix(buf: bytes) -> int:
    """Length of the shortest prefix of ``buf`` (at least MIN_FRAME bytes) that ends in its own CRC, or 0."""
    crc = 0xFFFF
    table = crc16_of.MODBUS_TABLE
    limit = min(len(buf), MAX_FRAME) - 2
    for k in range(limit):
        crc = (crc >> 8) ^ table[(crc ^ buf[k]) & 0xFF]
        if k >= 1 and buf[k + 1] == crc & 0xFF and buf[k + 2] == crc >> 8:
            return k + 3
    return 0


def _confirmed_frame(buf: bytes) -> int:
    """Length of a frame at the start of ``buf`` whose length its function code confirms and whose CRC checks."""
    return next((n for n in sorted(candidate_lengths(buf)) if n <= MAX_FRAME and crc_ok(buf[:n])), 0)


def split_frames(run: bytes) -> tuple[list[bytes], int]:
    """The valid frames in a run of bytes bounded by silence, and how many bytes had to be dropped.

    At each position the lengths the function code allows are tried first; a function code this server does
    not know says nothing of its length, so then the shortest prefix that carries a valid CRC is taken. After
    damaged bytes, framing resumes at the next position where a frame starts whose length its own function
    code confirms (so noise rarely passes for a frame)."""
    if crc_ok(run) and len(run) <= MAX_FRAME:
        return [run], 0
    frames: list[bytes] = []
    dropped = 0
    pos = 0
    while pos < len(run):
        rest = run[pos:]
        n = _confirmed_frame(rest) or _first_crc_prefix(rest)
        if n:
            frames.append(rest[:n])
            pos += n
            continue
        resume = next((k for k in range(pos + 1, len(run) - MIN_FRAME + 1) if _confirmed_frame(run[k:])), None)
        if resume is None:
            return frames, dropped + len(run) - pos
        dropped += resume - pos
        pos = resume
    return frames, dropped


class RtuFramer:
    """Collects bytes into frames bounded by a silent interval of ``t35_s``."""

    def __init__(self, t35_s: float) -> None:
        self.t35_s = t35_s
        self.buffer = bytearray()
        self.last_rx = 0.0
        self.dropped_bytes = 0
        self.bad_frames = 0
        self.bridged_pauses = 0
        self._held_len = 0        # bytes kept across a pause because they looked like an incomplete frame

    def feed(self, data: bytes, now: float) -> list[bytes]:
        """Add bytes that arrived at ``now``; returns the frames that a silence before them closed."""
        frames = self.flush(now)
        if self._held_len and len(self.buffer) == self._held_len:
            self.bridged_pauses += 1
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
        if self._held_len:
            if len(run) == self._held_len:
                if now - self.last_rx < INCOMPLETE_HOLD_S:
                    return []                          # still waiting for the rest of the frame
                # The rest never came: the held bytes are dropped below as a damaged run.
            elif not starts_with_frame(run):
                self.dropped_bytes += self._held_len   # they were not the start of a frame after all
                self.bad_frames += 1
                run = run[self._held_len:]
            self._held_len = 0
        elif not crc_ok(run) and is_incomplete(run):
            self._held_len = len(run)                  # a pause inside a frame: wait for the rest
            return []
        self.buffer.clear()
        if not run:
            return []
        frames, dropped = split_frames(run)
        if dropped:
            self.dropped_bytes += dropped
            self.bad_frames += 1
        return frames

    def deadline(self) -> float | None:
        """When the frame being received ends if no more bytes come."""
        if not self.buffer:
            return None
        holding = self._held_len and len(self.buffer) == self._held_len
        return self.last_rx + (INCOMPLETE_HOLD_S if holding else self.t35_s)
