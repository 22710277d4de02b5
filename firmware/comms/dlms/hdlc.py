"""The HDLC link (IEC 62056-46, frame format type 3) of one serial line: the meter is the secondary station.

The JEMStar II's link parameters: information field at most 128 bytes each way, window size 1, 4-byte server
addresses (upper: logical device 1; lower: the meter's physical address), inactivity timeout. ``HdlcLink.feed``
takes bytes from the line and returns the frames to send; frames for other addresses are ignored (a multi-drop
line), frames with a bad HCS or FCS are dropped, a partial frame older than the inter-frame timeout is
discarded, and an inbound message is bounded in size.
"""
from __future__ import annotations

import time
from typing import Callable

from firmware.comms import crc16 as crc16_of

from firmware.comms.dlms.session import Session

FLAG = 0x7E
MAX_INFO = 128
WINDOW = 1
MAX_MESSAGE = 4096                 # an inbound APDU over several segments
MAX_FRAME = MAX_INFO + 32
LLC_REQUEST = b"\xe6\xe6\x00"
LLC_RESPONSE = b"\xe6\xe7\x00"
SNRM, UA, DISC, DM, FRMR, UI = 0x83, 0x63, 0x43, 0x0F, 0x87, 0x03
POLL = 0x10
UPPER_ADDRESS = 1                  # the management logical device


crc16 = crc16_of.x25     # the HDLC frame check sequence


def _crc_bytes(data: bytes) -> bytes:
    return crc16(data).to_bytes(2, "little")


def parse_address(raw: bytes, pos: int) -> tuple[list[int], int]:
    """The address bytes' 7-bit values from ``pos`` up to the byte whose bit 0 is set (at most 4)."""
    out: list[int] = []
    while pos < len(raw) and len(out) < 4:
        b = raw[pos]
        out.append(b >> 1)
        pos += 1
        if b & 1:
            return out, pos
    raise ValueError("address not terminated")


def server_address(upper: int, lower: int) -> bytes:
    return bytes([(upper >> 7) << 1, (upper & 0x7F) << 1, (lower >> 7) << 1, ((lower & 0x7F) << 1) | 1])


def build_frame(dest: bytes, src: bytes, control: int, info: bytes = b"", segmented: bool = False) -> bytes:
    header_len = 2 + len(dest) + len(src) + 1 + 2
    total = header_len + (len(info) + 2 if info else 0)
    fmt = bytes([0xA0 | (0x08 if segmented else 0) | ((total >> 8) & 0x07), total & 0xFF])
    head = fmt + dest + src + bytes([control])
    out = head + _crc_bytes(head)
    if info:
        out += info + _crc_bytes(out + info)
    return bytes([FLAG]) + out + bytes([FLAG])


class HdlcLink:
    def __init__(self, new_session: Callable[[int, int, str], Session], physical_address: int,
                 inactivity_timeout_s: float, inter_frame_timeout_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.new_session = new_session
        self.physical = physical_address
        self.inactivity_s = inactivity_timeout_s
        self.inter_frame_s = inter_frame_timeout_s
        self.clock = clock
        self.buffer = bytearray()
        self.buffer_since = 0.0
        self.counters = {"frames": 0, "bad_frames": 0, "other_address": 0, "connects": 0, "timeouts": 0}
        self._disconnect()

    def _disconnect(self) -> None:
        self.connected = False
        self.client = 0
        self.session: Session | None = None
        self.vs = 0
        self.vr = 0
        self.inbound = bytearray()
        self.outbound: list[bytes] = []
        self.last_seen = self.clock()
        self.max_tx = MAX_INFO
        self.max_rx = MAX_INFO

    # ------------------------------------------------------------------ bytes in, frames out

    def feed(self, data: bytes) -> list[bytes]:
        now = self.clock()
        if self.connected and now - self.last_seen > self.inactivity_s:
            self.counters["timeouts"] += 1
            self._disconnect()
        if self.buffer and now - self.buffer_since > self.inter_frame_s:
            self.buffer.clear()
        if not self.buffer:
            self.buffer_since = now
        self.buffer += data
        out: list[bytes] = []
        while True:
            frame = self._next_frame()
            if frame is None:
                break
            out += self._frame(frame)
        return out

    def _next_frame(self) -> bytes | None:
        buf = self.buffer
        while buf and buf[0] != FLAG:
            del buf[0]
        while len(buf) >= 2 and buf[1] == FLAG:             # flags between frames
            del buf[0]
        if len(buf) < 3:
            return None
        if buf[1] & 0xF0 != 0xA0:
            del buf[0]
            self.counters["bad_frames"] += 1
            return None if len(buf) < 3 else self._next_frame()
        size = ((buf[1] & 0x07) << 8) | buf[2]
        if size > MAX_FRAME or size < 7:
            del buf[0]
            self.counters["bad_frames"] += 1
            return self._next_frame()
        if len(buf) < size + 2:
            return None
        frame = bytes(buf[1:size + 1])
        if buf[size + 1] != FLAG:
            del buf[0]
            self.counters["bad_frames"] += 1
            return self._next_frame()
        del buf[:size + 1]                                  # the closing flag may open the next frame
        self.buffer_since = self.clock()
        return frame

    def _frame(self, frame: bytes) -> list[bytes]:
        try:
            dest, pos = parse_address(frame, 2)
            src, pos = parse_address(frame, pos)
        except ValueError:
            self.counters["bad_frames"] += 1
            return []
        if pos + 3 > len(frame) or len(src) != 1:
            self.counters["bad_frames"] += 1
            return []
        control = frame[pos]
        if frame[pos + 1:pos + 3] != _crc_bytes(frame[:pos + 1]):
            self.counters["bad_frames"] += 1
            return []
        info = b""
        if len(frame) > pos + 3:
            if len(frame) < pos + 5 or frame[-2:] != _crc_bytes(frame[:-2]):
                self.counters["bad_frames"] += 1
                return []
            info = frame[pos + 3:-2]
        upper, lower = self._server(dest)
        if upper is None or lower != self.physical and lower is not None:
            self.counters["other_address"] += 1
            return []
        self.counters["frames"] += 1
        segmented = bool(frame[0] & 0x08)
        client = src[0]
        return self._control(client, upper, control, info, segmented)

    @staticmethod
    def _server(dest: list[int]) -> tuple[int | None, int | None]:
        if len(dest) == 1:
            return dest[0], None
        if len(dest) == 2:
            return dest[0], dest[1]
        if len(dest) == 4:
            return (dest[0] << 7) | dest[1], (dest[2] << 7) | dest[3]
        return None, None

    def _reply(self, control: int, info: bytes = b"", segmented: bool = False) -> bytes:
        return build_frame(bytes([(self.client << 1) | 1]), server_address(UPPER_ADDRESS, self.physical), control,
                           info, segmented)

    # ------------------------------------------------------------------ procedures

    def _control(self, client: int, upper: int, control: int, info: bytes, segmented: bool) -> list[bytes]:
        kind = control & ~POLL
        if kind == SNRM:
            self._disconnect()
            self.connected, self.client = True, client
            self.session = self.new_session(client, upper, "hdlc")
            self.counters["connects"] += 1
            self._negotiate(info)
            return [self._reply(UA | POLL, self._ua_info())]
        if not self.connected or client != self.client:
            return [build_frame(bytes([(client << 1) | 1]), server_address(UPPER_ADDRESS, self.physical),
                                DM | POLL)] if control & POLL else []
        self.last_seen = self.clock()
        if kind == DISC:
            self._disconnect()
            return [self._reply(UA | POLL)]
        if control & 0x01 == 0:                                     # I frame
            return self._information(control, info, segmented)
        if control & 0x0F == 0x01:                                  # RR: the client asks for the next segment
            nr = control >> 5
            if self.outbound and nr == self.vs:
                return [self._send_segment()]
            return [self._reply(self._rr())]
        return [self._reply(FRMR | POLL)]

    def _rr(self) -> int:
        return (self.vr << 5) | POLL | 0x01

    def _information(self, control: int, info: bytes, segmented: bool) -> list[bytes]:
        ns, nr = (control >> 1) & 0x07, control >> 5
        if ns != self.vr:                       # a repeat: answer with what we expect
            return [self._reply(self._rr())]
        if nr == self.vs and self.outbound:
            self.outbound = []
        self.vr = (self.vr + 1) % 8
        self.inbound += info
        if len(self.inbound) > MAX_MESSAGE:
            self.inbound.clear()
            return [self._reply(FRMR | POLL)]
        if segmented:
            return [self._reply(self._rr())]
        message = bytes(self.inbound)
        self.inbound.clear()
        if not message.startswith(LLC_REQUEST) or self.session is None:
            return [self._reply(self._rr())]
        reply = self.session.handle(message[len(LLC_REQUEST):])
        if not reply:
            return [self._reply(self._rr())]
        data = LLC_RESPONSE + reply
        self.outbound = [data[i:i + self.max_tx] for i in range(0, len(data), self.max_tx)]
        return [self._send_segment()]

    def _send_segment(self) -> bytes:
        info = self.outbound.pop(0)
        control = (self.vr << 5) | POLL | (self.vs << 1)
        self.vs = (self.vs + 1) % 8
        return self._reply(control, info, segmented=bool(self.outbound))

    def _negotiate(self, info: bytes) -> None:
        """SNRM parameters (0x81 0x80 group): the client's maxima, capped by the meter's."""
        if len(info) < 3 or info[0] != 0x81 or info[1] != 0x80:
            return
        pos, end = 3, min(len(info), 3 + info[2])
        while pos + 2 <= end:
            pid, n = info[pos], info[pos + 1]
            value = int.from_bytes(info[pos + 2:pos + 2 + n], "big") if 0 < n <= 4 else 0
            pos += 2 + n
            if pid == 0x05 and value:                   # client's max info transmit = what we receive
                self.max_rx = min(MAX_INFO, max(32, value))
            elif pid == 0x06 and value:                 # client's max info receive = what we transmit
                self.max_tx = min(MAX_INFO, max(32, value))

    def _ua_info(self) -> bytes:
        params = (bytes([0x05, 1, self.max_tx]) + bytes([0x06, 1, self.max_rx]) +
                  bytes([0x07, 4]) + WINDOW.to_bytes(4, "big") + bytes([0x08, 4]) + WINDOW.to_bytes(4, "big"))
        return bytes([0x81, 0x80, len(params)]) + params
