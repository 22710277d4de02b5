"""Bad SNMP packets from several loopback sources against the agent in the comms service: random bytes,
truncated and corrupted messages, wrong and huge BER lengths, bad versions, v3 headers with garbage. The
service stays up, its memory does not grow, and honest managers (net-snmp's snmpget) are served meanwhile;
one flooding address is held to its rate while another is served."""
from __future__ import annotations

import random
import socket
import time

import pytest

from firmware.comms.snmp import ber
from firmware.comms.snmp import pdu as P
from tests.conftest import iterations
from tests.integration.snmp_support import SnmpMeter, instance

SOURCES = [f"127.0.0.{n}" for n in range(2, 10)]
BATCH = 100                      # datagrams in flight at once: within the socket buffer on a busy host
RSS_GROWTH_KIB = 4096            # a bound well above allocator noise, far below a per-packet leak


def _valid(rng: random.Random) -> bytes:
    name = ber.oid("1.3.6.1.4.1.32473.1.1.1.%d.0" % rng.randint(1, 30))
    request = P.Pdu(rng.choice((P.GET, P.GET_NEXT, P.GET_BULK)), rng.getrandbits(31), 0, 5,
                    [(name, ber.NULL_VALUE)])
    if rng.random() < 0.5:
        return P.encode_community(P.V2C, b"public", request)
    usm = P.UsmParameters(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 12))), rng.randint(0, 9),
                          rng.randint(0, 999), b"monitor", bytes(rng.choice((0, 24))), bytes(rng.choice((0, 8))))
    message, _ = P.encode_v3(rng.getrandbits(31), 1472, rng.randint(0, 7), usm,
                             P.encode_scoped(b"", b"", request), rng.random() < 0.5)
    return message


def bad_packet(rng: random.Random) -> bytes:
    kind = rng.randrange(8)
    good = _valid(rng)
    if kind == 0:                                         # random bytes
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 600)))
    if kind == 1:                                         # truncated
        return good[:rng.randint(0, len(good) - 1)]
    if kind == 2:                                         # one length byte changed
        data = bytearray(good)
        data[rng.choice([1, 3, 5, 7, min(9, len(data) - 1)])] = rng.getrandbits(8)
        return bytes(data)
    if kind == 3:                                         # a huge length announced
        return b"\x30\x84" + rng.choice([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x10\x00\x00"]) + good[2:]
    if kind == 4:                                         # a version the agent does not speak
        return ber.sequence(ber.encode_int(rng.choice((-1, 0, 2, 4, 255, 1 << 40))), good[3:])
    if kind == 5:                                         # bytes flipped anywhere
        data = bytearray(good)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == 6:                                         # deep nesting, indefinite lengths
        return b"\x30\x80" * rng.randint(1, 400)
    return good + bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40)))   # trailing garbage


def _flood(meter: SnmpMeter, count: int, rng: random.Random) -> None:
    socks = []
    for source in SOURCES:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((source, 0))
        socks.append(s)
    try:
        sent = 0
        while sent < count:
            for _ in range(min(BATCH, count - sent)):
                rng.choice(socks).sendto(bad_packet(rng), ("127.0.0.1", meter.port))
                sent += 1
            # an honest manager between batches: served, and the batch is drained before the next
            got = meter.values("snmpget", meter.v2c(), instance("v_an"))
            assert got[instance("v_an")][1] == "23012"
            assert meter.proc.poll() is None
    finally:
        for s in socks:
            s.close()


def _counted(meter: SnmpMeter) -> int:
    return sum(meter.counter(name) for name in ("snmpInASNParseErrs", "snmpInBadVersions", "snmpInBadCommunityNames",
                                                "usmStatsUnknownEngineIDs", "usmStatsUnknownUserNames",
                                                "usmStatsUnsupportedSecLevels", "snmpInvalidMsgs"))


def _run(tmp_path, count: int) -> None:
    meter = SnmpMeter(tmp_path, {"rate": 10000, "burst": 10000})
    try:
        rng = random.Random(161)
        _flood(meter, min(1000, count), rng)              # warm up: caches, allocator arenas
        before = meter.rss_kib()
        _flood(meter, count, rng)
        after = meter.rss_kib()
        assert after - before < RSS_GROWTH_KIB, (before, after)
        assert _counted(meter) > 0.9 * count            # refused as what they are, not lost
        assert meter.proc.poll() is None
    finally:
        out = meter.close()
    assert "Traceback" not in out, out


def test_ten_thousand_bad_packets_from_several_sources(tmp_path):
    _run(tmp_path, 10_000)


@pytest.mark.slow
def test_bad_packets_soak(tmp_path):
    _run(tmp_path, iterations(10_000, 50_000, 500_000))


def _drain(sock: socket.socket) -> int:
    got = 0
    try:
        while sock.recv(4096):
            got += 1
    except BlockingIOError:
        pass
    return got


def test_a_flooding_address_is_held_to_its_rate_while_another_is_served(tmp_path):
    meter = SnmpMeter(tmp_path, {"rate": 50, "burst": 100})
    try:
        flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        flood.bind(("127.0.0.7", 0))
        request = P.encode_community(P.V2C, meter.community.encode(),
                                     P.Pdu(P.GET_BULK, 1, 0, 64, [(ber.oid("1.3"), ber.NULL_VALUE)]))
        flood.settimeout(0.0)
        answers = sent = 0
        start = time.monotonic()
        while time.monotonic() < start + 2.0:
            for _ in range(10):
                flood.sendto(request, ("127.0.0.1", meter.port))
            sent += 10
            answers += _drain(flood)
            time.sleep(0.001)
        time.sleep(0.5)
        answers += _drain(flood)
        elapsed = time.monotonic() - start
        flood.close()
        # the agent grants the burst, then the rate, over the time it has run: never more answers than that
        # (whenever each request was processed), and far fewer than were sent
        assert 0 < answers <= 100 + 50 * elapsed + 5, (answers, elapsed)
        assert answers < sent / 4, (answers, sent)
        got = meter.values("snmpget", meter.v2c(), instance("v_an"))
        assert got[instance("v_an")][1] == "23012"
    finally:
        meter.close()
