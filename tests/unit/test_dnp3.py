"""The DNP3 outstation's layers on their own: the link layer's CRC and frames against IEEE 1815-2012's worked
octets, the parser's recovery from damage, transport reassembly, request parsing limits, the point list's
checks, event buffers and overflow, and responses split into fragments."""
from __future__ import annotations

import struct

import pytest

from firmware.comms.dnp3 import link
from firmware.comms.dnp3 import objects as o
from firmware.comms.dnp3.database import Database, Event, EventBuffer
from firmware.comms.dnp3.points import load
from firmware.comms.dnp3.reads import read
from firmware.comms.dnp3.response import ResponseWriter


def test_crc_of_the_standard_link_reset_frame():
    # IEEE 1815-2012 example: reset link states from master 1 to outstation 1024 ... here the well-known
    # "05 64 05 C0 01 00 00 04 E9 21" (request link status direction master -> outstation 1 from 1024)
    header = bytes.fromhex("056405c001000004")
    assert link.crc(header) == 0x21E9
    assert link.encode(0xC0, 1, 1024) == bytes.fromhex("056405c001000004e921")


def test_frames_round_trip_across_blocks_and_arbitrary_splits():
    data = bytes(range(200))
    wire = link.encode(0xC4, 4, 3, data)
    assert len(wire) == link.frame_length(5 + len(data))
    parser = link.FrameParser()
    frames = []
    for k in range(0, len(wire), 7):
        frames += parser.feed(wire[k:k + 7])
    assert [(f.dest, f.src, f.data) for f in frames] == [(4, 3, data)]
    assert not parser.partial


def test_damaged_frames_are_dropped_and_the_next_one_found():
    good = link.encode(0xC4, 4, 3, b"\xc0\x01\x3c\x02\x06")
    bad_header = bytearray(good)
    bad_header[4] ^= 0xFF
    bad_body = bytearray(good)
    bad_body[12] ^= 0x01
    parser = link.FrameParser()
    frames = parser.feed(b"\x00\x05garbage" + bytes(bad_header) + bytes(bad_body) + good)
    assert [f.data for f in frames] == [b"\xc0\x01\x3c\x02\x06"]
    assert parser.bad >= 2
    assert len(parser.buffer) <= 1


def test_parser_holds_at_most_one_frame():
    parser = link.FrameParser()
    parser.feed(b"\x05\x64" + b"\xff" * 10_000)
    assert len(parser.buffer) < link.MAX_FRAME


def test_reassembly_drops_out_of_order_and_oversized_fragments():
    r = link.Reassembler(limit=100)
    assert r.feed(bytes((link.FIR | 1,)) + b"ab") is None
    assert r.feed(bytes((3,)) + b"cd") is None                 # sequence 3 after 1: dropped
    assert r.feed(bytes((link.FIN | 2,)) + b"ef") is None        # nothing under way any more
    assert r.feed(bytes((link.FIR | link.FIN | 9,)) + b"ok") == b"ok"
    assert r.feed(bytes((link.FIR | 0,)) + b"x" * 60) is None
    assert r.feed(bytes((1,)) + b"x" * 60) is None              # past the limit: dropped
    assert r.dropped >= 3
    assert r.parts == bytearray()


def test_segments_carry_a_long_fragment():
    fragment = bytes(range(256)) * 3
    segs, nxt = link.segments(fragment, 62)
    r = link.Reassembler(limit=2048)
    out = [r.feed(s) for s in segs]
    assert out[-1] == fragment and nxt == (62 + len(segs)) & 0x3F


@pytest.mark.parametrize("body", [
    b"\x1e",                                   # header cut short
    b"\x1e\x05\x00\x05",                       # start-stop cut short
    b"\x1e\x05\x00\x09\x02",                   # stop before start
    b"\x1e\x05\x28\xff\xff",                   # 65535 indexes announced, none given
    b"\x1e\x05\x5b\x01",                       # qualifier not served
    b"\x1e\x05\x07\x00",                       # count of zero
    b"\x3c\x02\x06" * (o.MAX_HEADERS + 1),     # too many headers
])
def test_requests_that_do_not_parse(body):
    with pytest.raises(o.ParseError):
        o.parse_headers(body, write_like=False)


def test_write_objects_are_checked_for_size():
    with pytest.raises(o.ParseError):
        o.parse_headers(b"\x0c\x01\x17\x01\x00\x03", write_like=True)       # CROB cut short
    with pytest.raises(o.ParseError):
        o.parse_headers(b"\x1e\x01\x07\x01" + b"\x00" * 4, write_like=True)  # analog inputs are not written
    (h,) = o.parse_headers(b"\x32\x01\x07\x01" + o.time48(1234567), write_like=True)
    assert o.read_time48(h.objects[0][1]) == 1234567


def test_event_buffer_overflow_drops_the_oldest_until_confirmed():
    buf = EventBuffer(capacity=3)
    buf.add(Event(k, 32, 0, 7, 2, float(k), 1, 0) for k in range(5))
    assert buf.overflow and [e.id for e in buf.classes[2]] == [2, 3, 4]
    chosen = buf.select((2,), None, 2)
    assert [e.id for e in chosen] == [2, 3]
    buf.release()
    chosen = buf.select((2,), None, None)
    buf.confirm(e.id for e in chosen)
    assert not buf.overflow and buf.pending(2) == 0


def test_a_large_read_is_split_into_fragments_without_splitting_objects():
    db = Database()
    db.update({"v_an": 230.0, "wh_delivered": 5.0})
    events = EventBuffer(10)
    w = ResponseWriter(max_fragment=249)
    read(db, events, [o.Header(60, 1, o.Q_ALL)], w)
    assert len(w.fragments) > 1
    assert all(len(f.body) <= 249 - 4 for f in w.fragments)
    # every static point appears exactly once over the fragments
    seen: list[tuple[int, int]] = []
    for f in w.fragments:
        body = bytes(f.body)
        pos = 0
        while pos < len(body):
            group, variation, qualifier = body[pos:pos + 3]
            if qualifier == o.Q_START_STOP_8:
                start, stop = body[pos + 3], body[pos + 4]
                pos += 5
            else:
                start, stop = struct.unpack_from("<HH", body, pos + 3)
                pos += 7
            n = stop - start + 1
            pos += (n + 7) // 8 if (group, variation) == (1, 1) else n * o.SIZES[(group, variation)]
            seen += [(group, i) for i in range(start, stop + 1)]
    assert sorted(seen) == sorted((d.group, d.index) for d in load())


def test_analog_encodings_scale_integers_and_flag_over_range():
    assert o.analog_static(5, 230.5, o.ONLINE) == struct.pack("<Bf", 1, 230.5)
    assert o.analog_static(3, 1e12, o.ONLINE) == struct.pack("<i", 2**31 - 1)
    assert o.analog_static(2, -1e6, o.ONLINE) == struct.pack("<Bh", o.ONLINE | o.OVER_RANGE, -2**15)
    assert o.analog_static(1, None, o.ONLINE) == struct.pack("<Bi", 0, 0)
    assert o.counter(20, 5, 2**32 + 7, o.ONLINE) == struct.pack("<I", 7)      # counters roll over


def test_reads_by_index_answer_with_the_request_qualifier_and_refuse_unknown_indexes():
    db = Database()
    db.update({"v_an": 230.0, "revenue_locked": 1.0})
    v_an = next(d.index for d in load() if d.name == "v_an")
    locked = next(d.index for d in load() if d.name == "revenue_locked")
    w = ResponseWriter(2048)
    headers = o.parse_headers(bytes((30, 5, 0x17, 1, v_an, 1, 1, 0x28, 1, 0)) + struct.pack("<H", locked), False)
    assert read(db, EventBuffer(10), headers, w) == 0
    body = bytes(w.fragments[0].body)
    assert body[:5] == bytes((30, 5, 0x17, 1, v_an)) and struct.unpack_from("<Bf", body, 5) == (1, 230.0)
    # binary inputs asked for packed bits by index come with flags (g1v2): packed bits carry no index
    assert body[10:13] == bytes((1, 2, 0x28)) and body[-1] == o.ONLINE | o.STATE
    w = ResponseWriter(2048)
    bad = o.parse_headers(bytes((30, 5, 0x28, 1, 0)) + struct.pack("<H", 60000), False)
    assert read(db, EventBuffer(10), bad, w) == o.IIN_PARAMETER_ERROR
    unknown = o.parse_headers(bytes((40, 1, 0x06, 30, 9, 0x06)), False)
    assert read(db, EventBuffer(10), unknown, ResponseWriter(2048)) == o.IIN_OBJECT_UNKNOWN
