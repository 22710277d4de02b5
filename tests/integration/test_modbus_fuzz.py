"""Robustness: at least 10,000 malformed or random requests over TCP and over RTU (MODBUS_FUZZ_FRAMES raises the
count for a soak). Every request must be answered or dropped as the protocol says, the server must keep serving,
and no request may store anything or provoke exception 04 (a fault inside the server).

The oracle below is written from the Modbus Application Protocol v1.1b3 and SPEC §7, independently of the
handler: which function codes exist, what a well-formed request of each looks like, the length of the answer.
"""
import contextlib
import os
import random
import socket
import struct
import time

import pytest
import serial

from firmware.comms.modbus.rtu import crc_ok, with_crc
from firmware.comms.modbus.rtu_server import ModbusRtuServer
from firmware.comms.modbus.tcp import ModbusTcpServer
from tests.integration.modbus_support import LoopThread, Meter, SocatPair

FRAMES = max(10_000, int(os.environ.get("MODBUS_FUZZ_FRAMES", "0") or 0))
SUPPORTED = {1, 2, 3, 4, 5, 6, 15, 16, 17, 43, 100}
WRITES = {5, 6, 15, 16}
INTERESTING = [0, 1, 29, 88, 100, 2998, 2999, 3000, 3007, 3027, 3108, 3109, 3110, 3111, 3203, 3205, 3250,
               3763, 4000, 4191, 5000, 5001, 5003, 5004, 21299, 22000, 22999, 65534, 65535]


def random_pdu(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.15:                                      # pure noise
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 24)))
    fc = rng.choice([1, 2, 3, 4, 5, 6, 15, 16, 17, 43, 100, 7, 8, 11, 12, 20, 22, 23, 24, 0, 0x80, 0x83, 255])
    address = rng.choice(INTERESTING) if rng.random() < 0.7 else rng.randrange(65536)
    count = rng.choice([0, 1, 2, 4, 112, 123, 124, 125, 126, 2000, 2001, 0xFFFF, rng.randrange(65536)])
    if fc in (15, 16):
        nbytes = (count + 7) // 8 if fc == 15 else 2 * count
        nbytes = nbytes & 0xFF if rng.random() < 0.7 else rng.randrange(256)
        body = struct.pack(">BHHB", fc, address, count & 0xFFFF, nbytes)
        body += bytes(rng.choice([0, 1, 0xFF]) for _ in range(min(nbytes, 246)))
    elif fc == 43:
        body = bytes((43, rng.choice([14, 14, 14, 13, 0]), rng.randrange(6), rng.choice([0, 1, 6, 0x80, 0x81])))
    elif fc == 17:
        body = bytes((17,))
    elif fc == 100:                                      # read scattered: byte count, sub-function, addresses
        addresses = [rng.choice(INTERESTING) + rng.choice([0, 0, 1]) for _ in range(rng.choice([0, 1, 2, 4, 100, 101]))]
        rest = bytes((rng.choice([4, 4, 4, 1]), rng.randrange(256))) + b"".join(
            struct.pack(">H", a & 0xFFFF) for a in addresses)
        body = bytes((100, len(rest) & 0xFF if rng.random() < 0.8 else rng.randrange(256))) + rest
    else:
        value = rng.choice([0, 1, 0xFF00, 0x1234, rng.randrange(65536)])
        body = struct.pack(">BHH", fc, address, count if fc not in (5, 6) else value)
    cut = rng.random()
    if cut < 0.1:
        body = body[:rng.randrange(len(body) + 1)]       # truncated
    elif cut < 0.15:
        body += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))   # trailing bytes
    return body[:253]


def oracle(pdu: bytes, reply: bytes | None) -> str | None:
    """None when ``reply`` is an answer the protocol allows to ``pdu``; else what is wrong."""
    not_a_request = not pdu or not 1 <= pdu[0] <= 0x7F       # function codes 128-255 mark exceptions
    if reply is None:
        return None if not_a_request or pdu[0] in WRITES else "silent to a request that must be answered"
    if not_a_request:
        return "answered something that is not a request"
    fc = pdu[0]
    if reply[0] == fc | 0x80:
        if len(reply) != 2:
            return "exception of the wrong length"
        code = reply[1]
        illegal_function = (fc not in SUPPORTED or (fc == 43 and (len(pdu) < 2 or pdu[1] != 14))
                            or (fc == 100 and len(pdu) >= 3 and pdu[2] != 4))
        if code == 4:
            return "exception 04: a fault inside the server"
        if (code == 1) != illegal_function:
            return f"exception {code} where illegal-function is {illegal_function}"
        return None if code in (1, 2, 3) else f"unknown exception code {code}"
    if reply[0] != fc or fc not in SUPPORTED:
        return f"answer with function {reply[0]} to function {fc}"
    if fc in (1, 2, 3, 4):
        if len(pdu) != 5:
            return "normal answer to a malformed read"
        count = struct.unpack(">H", pdu[3:5])[0]
        limit, nbytes = (2000, (count + 7) // 8) if fc <= 2 else (125, 2 * count)
        if not 1 <= count <= limit or reply[1] != nbytes or len(reply) != 2 + nbytes:
            return "read answer of the wrong size"
        return None
    if fc in (5, 6):
        return None if reply == pdu and len(pdu) == 5 else "write answer is not the echo"
    if fc in (15, 16):
        return None if reply == pdu[:5] else "multiple-write answer is not the echo"
    if fc == 17:
        return None if len(pdu) == 1 and reply[1] == len(reply) - 2 else "bad report-server-id answer"
    if fc == 43:
        return None if len(pdu) == 4 and reply[:3] == pdu[:3] and pdu[2] in (1, 2, 3, 4) else "bad FC 43 answer"
    if fc == 100:
        well_formed = len(pdu) >= 6 and len(pdu) == 2 + pdu[1] and pdu[2] == 4 and pdu[1] % 2 == 0 \
            and pdu[1] <= 202
        return None if well_formed and reply[:4] == bytes((100, pdu[1], 4, pdu[3])) and len(reply) == len(pdu) \
            else "bad FC 100 answer"
    return "unexpected"


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


SENTINEL = struct.pack(">BHH", 3, 89, 10)      # the serial number: a read the random frames never make


def _values_untouched(meter) -> None:
    values = meter.snapshot.read()
    assert values["v_an"] == pytest.approx(230.12) and values["wh_delivered"] == pytest.approx(123_456_789.4)


def test_tcp_fuzz():
    rng = random.Random(0x6D6F6462)
    loop = LoopThread()
    meter = Meter()
    server = ModbusTcpServer(meter.handler, "127.0.0.1", 0)
    loop.run(server.start())
    failures: list[str] = []
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        tid = 0
        sent = 0
        while sent < FRAMES:
            batch = []
            for _ in range(50):
                tid = (tid + 1) & 0xFFFF
                pdu = random_pdu(rng)
                batch.append((tid, pdu))
            tid = (tid + 1) & 0xFFFF
            sentinel_tid = tid
            stream = b"".join(struct.pack(">HHHB", t, 0, len(p) + 1, 1) + p for t, p in batch)
            sock.sendall(stream + struct.pack(">HHHB", sentinel_tid, 0, 6, 1) + SENTINEL)
            replies: dict[int, bytes] = {}
            while True:
                t, pid, length, unit = struct.unpack(">HHHB", _recv_exact(sock, 7))
                body = _recv_exact(sock, length - 1)
                assert pid == 0 and unit == 1
                if t == sentinel_tid:
                    assert body[:2] == b"\x03\x14", "the server stopped serving"
                    break
                replies[t] = body
            for t, pdu in batch:
                problem = oracle(pdu, replies.get(t))
                if problem:
                    failures.append(f"{pdu.hex()} -> {replies.get(t, b'').hex()}: {problem}")
            sent += len(batch)
        sock.close()
        # Transport-level damage: each breaks only its own connection; the server goes on serving.
        for case in range(300):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            choice = case % 4
            if choice == 0:        # another protocol id, or no PDU: dropped, connection kept
                if rng.random() < 0.5:
                    sock.sendall(struct.pack(">HHHB", 1, rng.randrange(1, 65536), 6, 1) + SENTINEL)
                else:
                    sock.sendall(struct.pack(">HHHB", 1, 0, rng.choice([0, 1]), 1))
            elif choice == 1:      # impossible length: the stream cannot be framed, connection closed
                sock.sendall(struct.pack(">HHHB", 1, 0, rng.choice([255, 256, 0xFFFF]), 1) + SENTINEL)
                sock.settimeout(5)
                with contextlib.suppress(ConnectionResetError):
                    assert sock.recv(64) == b""
                sock.close()
                continue
            else:                  # truncated frame, or noise, then hang up
                sock.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))))
                sock.close()
                continue
            sock.sendall(struct.pack(">HHHB", 2, 0, 6, 1) + SENTINEL)
            t, _, length, _ = struct.unpack(">HHHB", _recv_exact(sock, 7))
            assert t == 2 and _recv_exact(sock, length - 1)[:2] == b"\x03\x14"
            sock.close()
        check = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        check.sendall(struct.pack(">HHHB", 9, 0, 6, 1) + SENTINEL)
        assert _recv_exact(check, 29)[7:9] == b"\x03\x14"
        check.close()
        _values_untouched(meter)
    finally:
        loop.run(server.stop())
        loop.close()
        meter.close()
    assert not failures, f"{len(failures)} of {sent}: " + "\n".join(failures[:20])
    assert sent >= 10_000


def response_length(buf: bytes) -> int:
    """Length of the RTU response at the start of ``buf`` (answers are well formed; 0 if incomplete)."""
    if len(buf) < 3:
        return 0
    fc = buf[1]
    if fc & 0x80:
        n = 5
    elif fc in (1, 2, 3, 4, 17, 100):
        n = 5 + buf[2]
    elif fc in (5, 6, 15, 16):
        n = 8
    elif fc == 43:
        if len(buf) < 9:
            return 0
        pos, count = 8, buf[7]
        for _ in range(count):
            if len(buf) < pos + 2:
                return 0
            pos += 2 + buf[pos + 1]
        n = pos + 2
    else:
        raise AssertionError(f"answer with function {fc}: {buf.hex()}")
    return n if len(buf) >= n else 0


def test_rtu_fuzz(tmp_path):
    # A pseudo-terminal has no baud rate; the silent interval is set short so that 10,000 frames take seconds.
    # The framer's timing at real baud rates is tested in tests/unit/test_modbus_rtu.py.
    t35 = 0.0006
    gap = 4 * t35
    unit = 7
    rng = random.Random(0x72747521)
    pair = SocatPair(str(tmp_path))
    loop = LoopThread()
    meter = Meter()
    server = ModbusRtuServer(meter.handler, pair.meter, 115200, "8N1", unit=unit, silent_interval=t35)
    loop.run(server.start())
    port = serial.Serial(pair.client, 115200, timeout=0)
    failures: list[str] = []
    sentinel = with_crc(bytes((unit,)) + SENTINEL)

    def read_until_sentinel_answer(timeout_s: float = 3.0) -> bytes:
        data = b""
        deadline = time.monotonic() + timeout_s
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"the server stopped serving (got {data.hex()})")
            data += port.read(4096)
            if len(data) >= 25 and data[-25:-22] == b"\x07\x03\x14" and crc_ok(data[-25:]):
                return data[:-25]
            time.sleep(0.0005)

    sent = 0
    lost = 0
    try:
        while sent < FRAMES:
            batch = []
            for _ in range(25):
                pdu = random_pdu(rng)
                roll = rng.random()
                target = unit if roll < 0.7 else rng.choice([0, 248, 1, 8, 247, 255])
                frame = with_crc(bytes((target,)) + pdu)
                if roll > 0.95:
                    frame = frame[:-1] + bytes((frame[-1] ^ 0x5A,))           # bad CRC
                batch.append((frame, pdu, target in (unit, 248) and crc_ok(frame)))
                port.write(frame)
                time.sleep(gap)
            port.write(sentinel)
            stream = read_until_sentinel_answer()
            time.sleep(gap)
            # Answers come in order, one per answered frame: give each frame the next answer if it is its own.
            answers = []
            while stream:
                n = response_length(stream)
                if not n:
                    failures.append(f"truncated answer {stream.hex()}")
                    break
                answers.append(stream[:n])
                stream = stream[n:]
            for frame, pdu, ours in batch:
                reply = None
                if answers and ours and answers[0][0] == frame[0] and pdu and answers[0][1] & 0x7F == pdu[0]:
                    reply = answers.pop(0)
                    if not crc_ok(reply):
                        failures.append(f"{frame.hex()} -> {reply.hex()}: bad CRC in the answer")
                        continue
                if not ours:
                    continue
                problem = oracle(pdu, reply[1:-2] if reply else None)
                if problem and reply is None:
                    # The framer bridges pauses inside visibly incomplete frames and resynchronises after
                    # damaged bytes on the next frame whose function code confirms its length. What it cannot
                    # recover is a frame of an unknown function code run together behind a damaged one (the
                    # fuzzer sends 5 % bad-CRC frames): nothing says where it starts. Nor can it split a frame
                    # from the next when its process ran too late to see the silence between them (the test's
                    # silent interval is 0.6 ms, shorter than a busy machine's scheduling delays). Observed 1-5
                    # per 10,000 on an idle machine, up to 30 at a load of 6 on 2 cores; a master repeats them.
                    lost += 1
                elif problem:
                    failures.append(f"{frame.hex()} -> {reply.hex() if reply else None}: {problem}")
            failures += [f"answer {a.hex()} to no frame of ours" for a in answers]
            sent += len(batch)
        # A babbling line (no silence for many frame lengths) then a normal request.
        for _ in range(20):
            port.write(bytes(rng.randrange(256) for _ in range(256)))
        time.sleep(10 * t35)
        port.write(sentinel)
        read_until_sentinel_answer()
        _values_untouched(meter)
    finally:
        port.close()
        loop.run(server.stop())
        loop.close()
        meter.close()
        pair.close()
    assert not failures, f"{len(failures)} of {sent}: " + "\n".join(failures[:20])
    assert sent >= 10_000
    print(f"rtu fuzz: {sent} frames, {lost} unanswered, {server.framer.bridged_pauses} pauses bridged, "
          f"{server.framer.bad_frames} damaged runs dropped")
    assert lost <= sent // 100, f"{lost} of {sent} frames lost (damaged runs: {server.framer.bad_frames})"
