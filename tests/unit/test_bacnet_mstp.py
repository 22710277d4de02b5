"""MS/TP frames and the master node state machine (ASHRAE 135 Clause 9, Annex G)."""
from __future__ import annotations

import pytest

from firmware.comms.bacnet.mstp import master as m
from firmware.comms.bacnet.mstp.frame import (
    DATA_CRC_RESIDUE,
    MAX_DATA_OCTETS,
    Frame,
    FrameType,
    Receiver,
    crc16,
    data_crc,
    header_crc,
)
from firmware.comms.bacnet.mstp.master import MasterNode, State


def x25(data: bytes) -> int:
    """CRC-16/X-25 written independently (bitwise, reflected 0x1021): the MS/TP data CRC is this CRC."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def test_header_crc_matches_the_annex_g_example():
    # Annex G.1: a Token frame to 0x10 from 0x05 carries header CRC 0x8C
    assert header_crc(bytes((0x00, 0x10, 0x05, 0x00, 0x00))) == 0x8C
    assert Frame(FrameType.TOKEN, 0x10, 0x05).encode() == bytes.fromhex("55ff00100500008c")


def test_data_crc_is_crc16_x25_lsb_first_with_the_annex_g_residue():
    assert x25(b"123456789") == 0x906E                  # the catalogued check value of CRC-16/X-25
    for data in (b"123456789", b"\x01\x22\x30", bytes(range(256))):
        crc = data_crc(data)
        assert int.from_bytes(crc, "little") == x25(data)
        running = 0xFFFF
        for b in data + crc:
            running = crc16(b, running)
        assert running == DATA_CRC_RESIDUE


def test_receiver_finds_frames_in_noise_and_drops_bad_ones():
    good = Frame(FrameType.DATA_NOT_EXPECTING_REPLY, 1, 2, b"\x01\x00abc").encode()
    bad_header = bytearray(good)
    bad_header[5] ^= 0x40
    bad_data = bytearray(good)
    bad_data[-3] ^= 0x01
    too_long = b"\x55\xff" + bytes((6, 1, 2, 0x01, 0xF6)) + bytes((header_crc(bytes((6, 1, 2, 0x01, 0xF6))),))
    stream = b"\x00\x55\x13" + bytes(bad_header) + good + bytes(bad_data) + too_long + good
    r = Receiver(0.1)
    frames = []
    for i, b in enumerate(stream):                       # one byte at a time, as a UART delivers them
        frames += r.feed(bytes((b,)), i * 1e-4)
    assert [f.data for f in frames] == [b"\x01\x00abc", b"\x01\x00abc"]
    assert r.counters["header_crc"] == 1 and r.counters["data_crc"] == 1 and r.counters["too_long"] == 1


def test_receiver_drops_a_frame_that_stops_arriving():
    raw = Frame(FrameType.DATA_NOT_EXPECTING_REPLY, 1, 2, b"x" * 40).encode()
    r = Receiver(0.1)
    assert r.feed(raw[:20], 0.0) == []
    assert r.feed(raw[20:], 0.5) == []                    # 0.5 s later: Tframe_abort has passed
    assert r.counters["aborted"] == 1
    assert len(r.feed(raw, 1.0)) == 1


def test_frame_data_is_bounded():
    with pytest.raises(ValueError, match="501"):
        Frame(FrameType.DATA_NOT_EXPECTING_REPLY, 1, 2, bytes(MAX_DATA_OCTETS + 1)).encode()


class Line:
    """Nodes on one ideal line: every frame reaches every other node at once; time advances in 1-ms ticks."""

    def __init__(self, *nodes: MasterNode) -> None:
        self.nodes = list(nodes)
        self.t = 0.0
        self.log: list[Frame] = []

    def _carry(self, sender: MasterNode, frames: list[Frame]) -> None:
        pending = [(sender, f) for f in frames]
        while pending:
            src, f = pending.pop(0)
            self.log.append(f)
            for node in self.nodes:
                if node is not src:
                    pending += [(node, g) for g in node.received(f, self.t)]

    def run(self, seconds: float) -> None:
        end = self.t + seconds
        while self.t < end:
            self.t += 0.001
            for node in list(self.nodes):
                self._carry(node, node.timer(self.t))


def test_two_masters_find_each_other_and_pass_the_token():
    a, b = MasterNode(2, max_master=10), MasterNode(7, max_master=10)
    line = Line(a, b)
    line.run(3.0)
    assert a.next_station == 7 and b.next_station == 2
    assert a.counters["tokens_received"] > 10 and b.counters["tokens_received"] > 10
    # lowest MAC regenerates the lost token first: T_no_token + T_slot * MAC
    assert a.counters["lost_tokens"] == 1 and b.counters["lost_tokens"] == 0
    polled = {f.destination for f in line.log if f.type == FrameType.POLL_FOR_MASTER}
    assert polled <= set(range(0, 11))                  # never past Max_Master
    a.send(7, b"\x01\x00hello", False)
    line.run(0.5)
    assert list(b.delivered) == [(2, b"\x01\x00hello", False)]


def test_max_info_frames_limits_frames_per_token():
    a, b = MasterNode(0, max_master=3, max_info_frames=2), MasterNode(1, max_master=3)
    line = Line(a, b)
    line.run(2.0)
    for i in range(5):
        a.send(1, bytes((1, 0, i)), False)
    start = len(line.log)
    line.run(1.0)
    runs, current = [], 0
    for f in line.log[start:]:
        if f.source == 0 and f.type == FrameType.DATA_NOT_EXPECTING_REPLY:
            current += 1
        elif f.type == FrameType.TOKEN and f.source == 0:
            if current:
                runs.append(current)
            current = 0
    assert runs and max(runs) == 2 and sum(runs) == 5


def test_a_lost_successor_is_replaced_and_a_lone_master_keeps_the_token():
    a, b = MasterNode(0, max_master=4), MasterNode(3, max_master=4)
    line = Line(a, b)
    line.run(2.0)
    line.nodes.remove(b)                                 # station 3 leaves the line
    line.run(3.0)
    assert a.sole_master and a.next_station == 0
    a.send(255, b"\x01\x00bcast", False)
    line.run(0.2)
    assert any(f.type == FrameType.DATA_NOT_EXPECTING_REPLY for f in line.log[-20:])


def test_a_data_request_is_answered_or_postponed():
    node = MasterNode(5, max_master=10)
    request = Frame(FrameType.DATA_EXPECTING_REPLY, 5, 9, b"\x01\x04req")
    assert node.received(request, 0.0) == []
    assert node.state is State.ANSWER_DATA_REQUEST and node.delivered[0] == (9, b"\x01\x04req", True)
    node.reply(9, b"\x01\x00ack")
    out = node.timer(0.01)
    assert [(f.type, f.destination, f.data) for f in out] == [(FrameType.DATA_NOT_EXPECTING_REPLY, 9,
                                                               b"\x01\x00ack")]
    node.received(request, 1.0)
    assert node.timer(1.0 + m.T_REPLY_DELAY_S / 2) == []
    out = node.timer(1.0 + m.T_REPLY_DELAY_S)
    assert [f.type for f in out] == [FrameType.REPLY_POSTPONED]


def test_no_reply_within_the_timeout_gives_the_token_back():
    a = MasterNode(0, max_master=1)
    a.next_station = 1
    a.send(1, b"\x01\x04req", True)
    out = a.received(Frame(FrameType.TOKEN, 0, 1), 0.0)
    assert [f.type for f in out] == [FrameType.DATA_EXPECTING_REPLY] and a.state is State.WAIT_FOR_REPLY
    assert a.timer(m.T_REPLY_TIMEOUT_S / 2) == []
    out = a.timer(m.T_REPLY_TIMEOUT_S + 0.001)
    assert a.counters["reply_timeouts"] == 1 and out and out[-1].type == FrameType.TOKEN


def test_bad_node_settings_are_refused():
    with pytest.raises(ValueError, match="Max_Master"):
        MasterNode(10, max_master=5)
