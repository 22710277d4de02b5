"""RTU framing: CRC, silent interval, frame edges by time, recovery of run-together frames."""
import pytest

from firmware.comms.modbus.rtu import (
    RtuFramer,
    candidate_lengths,
    crc16,
    crc_ok,
    silent_interval_s,
    split_frames,
    with_crc,
)
from firmware.comms.modbus.rtu_server import FRAMINGS, bits_per_char, serial_settings

READ = bytes.fromhex("010300000001")           # unit 1, FC 3, address 0, 1 register
WRITE = bytes.fromhex("011013880001020001")    # unit 1, FC 16, address 5000, 1 register, value 1


def test_crc_matches_the_specification_example():
    # Modbus over Serial Line v1.02 appendix B: "02 07" has CRC 0x1241, sent 41 12.
    assert crc16(bytes((0x02, 0x07))) == 0x1241
    assert with_crc(READ) == READ + bytes.fromhex("840a")
    assert crc_ok(with_crc(READ)) and not crc_ok(READ + b"\0\0") and not crc_ok(b"\x01")


@pytest.mark.parametrize("baud,framing,expected_ms", [
    (9600, "8E1", 3.5 * 11 / 9600 * 1e3), (2400, "8N1", 3.5 * 10 / 2400 * 1e3),
    (19200, "8N2", 3.5 * 11 / 19200 * 1e3), (38400, "8N1", 1.75), (115200, "8O2", 1.75),
])
def test_silent_interval(baud, framing, expected_ms):
    assert silent_interval_s(baud, bits_per_char(framing)) * 1e3 == pytest.approx(expected_ms)


def test_frames_end_at_silence_not_at_chunk_edges():
    t35 = 0.002
    framer = RtuFramer(t35)
    frame = with_crc(READ)
    assert framer.feed(frame[:3], 0.0) == []
    assert framer.feed(frame[3:], 0.001) == []          # gap shorter than t3.5: same frame
    assert framer.flush(0.0025) == []                   # not silent long enough yet
    assert framer.deadline() == pytest.approx(0.003)
    assert framer.flush(0.0031) == [frame]
    assert framer.deadline() is None


def test_a_silence_separates_two_frames_delivered_apart():
    framer = RtuFramer(0.002)
    a, b = with_crc(READ), with_crc(bytes.fromhex("020300100002"))
    assert framer.feed(a, 0.0) == []
    assert framer.feed(b, 0.01) == [a]
    assert framer.flush(0.02) == [b]


def test_run_together_request_and_response_are_split_by_crc():
    request = with_crc(bytes.fromhex("050300000002"))                 # master to unit 5
    response = with_crc(bytes.fromhex("05030412345678"))              # unit 5 answers
    ours = with_crc(WRITE)                                            # FC 16 to unit 1
    frames, dropped = split_frames(request + response + ours)
    assert frames == [request, response, ours] and dropped == 0


def test_noise_is_dropped_and_counted():
    framer = RtuFramer(0.002)
    framer.feed(b"\x01\x03\xff\x00\x12", 0.0)
    assert framer.flush(0.01) == []            # looks like the start of a request: held for the rest
    assert framer.flush(1.0) == []             # which never comes
    assert framer.bad_frames == 1 and framer.dropped_bytes == 5
    good = with_crc(READ)
    frames, dropped = split_frames(good + b"\x55\xaa")
    assert frames == [good] and dropped == 2


def test_babbling_line_keeps_memory_bounded():
    framer = RtuFramer(0.002)
    for k in range(100):
        framer.feed(bytes(range(256)) * 4, k * 0.001)
    assert len(framer.buffer) <= 256 * 4 + 1024


def test_candidate_lengths():
    assert candidate_lengths(with_crc(READ)) == {8, 5}                 # request, or a 0-byte read response
    assert candidate_lengths(bytes.fromhex("0110138800010200")) == {8}    # byte count not yet known as 11
    assert candidate_lengths(with_crc(WRITE)) == {8, 11}
    assert candidate_lengths(bytes.fromhex("0183020000")) == {5}


def test_framings_map_to_termios_settings():
    import serial

    for framing in FRAMINGS:
        settings = serial_settings(framing)
        assert settings["bytesize"] == serial.EIGHTBITS
        assert settings["parity"] == {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN,
                                      "O": serial.PARITY_ODD}[framing[1]]
        assert settings["stopbits"] == (serial.STOPBITS_ONE if framing[2] == "1" else serial.STOPBITS_TWO)
    assert bits_per_char("8N1") == 10 and bits_per_char("8E1") == 11 and bits_per_char("8O2") == 12
    with pytest.raises(ValueError, match="allowed"):
        serial_settings("7E1")


def test_run_together_frames_of_unknown_function_codes_are_split_by_crc():
    fifo = with_crc(bytes.fromhex("0718138900"))          # FC 24, which this server does not serve
    ours = with_crc(READ)
    frames, dropped = split_frames(fifo + ours)
    assert frames == [fifo, ours] and dropped == 0


def test_a_request_after_damaged_bytes_in_the_same_run_is_recovered():
    ours = with_crc(READ)
    frames, dropped = split_frames(bytes.fromhex("07fe82") + ours)      # 3 bytes of a broken frame
    assert frames == [ours] and dropped == 3
    frames, dropped = split_frames(bytes.fromhex("0103ffee") + ours)
    assert frames == [ours] and dropped == 4


def test_a_pause_inside_a_frame_is_bridged_while_the_frame_is_visibly_incomplete():
    from firmware.comms.modbus.rtu import INCOMPLETE_HOLD_S, RtuFramer, with_crc

    t35 = 0.002
    frame = with_crc(bytes([1, 16, 0x0B, 0xB8, 0, 2, 4, 0x43, 0x66, 0, 0]))  # FC16 write of two registers
    framer = RtuFramer(t35)
    assert framer.feed(frame[:5], 0.0) == []
    assert framer.flush(3 * t35) == []                 # looks like silence, but FC16 announced more bytes
    assert framer.deadline() == INCOMPLETE_HOLD_S
    assert framer.feed(frame[5:], 4 * t35) == []
    assert framer.flush(4 * t35 + 1.01 * t35) == [frame]
    assert framer.bridged_pauses == 1 and framer.bad_frames == 0


def test_an_incomplete_frame_is_dropped_after_the_hold_and_a_damaged_complete_one_at_once():
    from firmware.comms.modbus.rtu import INCOMPLETE_HOLD_S, RtuFramer, with_crc

    t35 = 0.002
    framer = RtuFramer(t35)
    request = with_crc(bytes([1, 6, 0x0B, 0xB7, 0, 2]))   # FC6: always 8 bytes, request and response
    framer.feed(request[:4], 0.0)
    assert framer.flush(INCOMPLETE_HOLD_S + 0.001) == [] and not framer.buffer
    damaged = bytearray(request)
    damaged[3] ^= 0x01
    framer.feed(bytes(damaged), 1.0)
    assert framer.flush(1.0 + 1.01 * t35) == [] and framer.bad_frames == 2
    framer.feed(request, 2.0)
    assert framer.flush(2.0 + 1.01 * t35) == [request]


def test_read_scattered_frames_are_framed_by_their_byte_count():
    # FC 100 / 4 to unit 1, transmission 7, addresses 3143 and 3144; the answer, two words; then FC 3
    request = with_crc(bytes.fromhex("01640604070c470c48"))
    response = with_crc(bytes.fromhex("0164060407 3f7b 1234".replace(" ", "")))
    assert candidate_lengths(request) == {len(request)}
    frames, dropped = split_frames(request + response + with_crc(READ))
    assert frames == [request, response, with_crc(READ)] and dropped == 0
