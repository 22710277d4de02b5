"""DLMS/COSEM served by a running meter, read by a head-end client of another library (dlms-cosem) over the TCP
wrapper and over HDLC on a serial line (a socat pty pair): each association, the clock read and set, registers
whose scaler and unit agree with Modbus at the same moment, the load profile by range and by entry, refusals of
wrong keys, and the invocation counter across a kill -9 of the comms service."""
from __future__ import annotations

import os
import signal
import struct
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from dlms_cosem import enumerations
from dlms_cosem.client import DataResultError, HLSError
from dlms_cosem.cosem import Obis, selective_access
from dlms_cosem.cosem.capture_object import CaptureObject
from dlms_cosem.exceptions import CommunicationError, DlmsClientException
from pymodbus.client import ModbusTcpClient

from firmware.points import points_by_name
from tests.support.dlms_meter import IMAGE_SIGNATURE, DlmsMeter, attribute, value

I = enumerations.CosemInterface
CLOCK = "0.0.1.0.0.255"
LOAD_PROFILE = "1.0.99.1.0.255"


@pytest.fixture(scope="module")
def meter(tmp_path_factory):
    m = DlmsMeter(tmp_path_factory.mktemp("dlms"))
    try:
        m.wait_ready()
        yield m
    finally:
        m.stop()


def _clock(raw: bytes) -> datetime:
    year = int.from_bytes(raw[0:2], "big")
    return datetime(year, raw[2], raw[3], raw[5], raw[6], raw[7], tzinfo=timezone.utc)


def _read_clock(client) -> tuple[datetime, datetime, datetime]:
    """The host's time before the request, the meter's clock (whole seconds: one second of slack each side),
    the host's after it: a loaded machine or a frame the link repeats can take seconds, so the meter's time is
    bounded by the request's, not compared with either end."""
    before = datetime.now(timezone.utc)
    clock = _clock(value(client, I.CLOCK, CLOCK))
    return before - timedelta(seconds=1), clock, datetime.now(timezone.utc) + timedelta(seconds=1)


def _date_time(when: datetime) -> bytes:
    w = when.astimezone(timezone.utc)
    return (w.year.to_bytes(2, "big") + bytes([w.month, w.day, w.isoweekday(), w.hour, w.minute, w.second,
                                                w.microsecond // 10000])
            + b"\x00\x00\x00")


def _object_list(client) -> list[tuple[int, str]]:
    rows = value(client, I.ASSOCIATION_LN, "0.0.40.0.0.255")
    return [(row[0], ".".join(str(b) for b in row[2])) for row in rows]


def test_public_client_reads_the_clock_and_identity_and_nothing_more(meter):
    with meter.public().session() as c:
        before, clock, after = _read_clock(c)
        assert before <= clock <= after
        assert value(c, I.DATA, "0.0.96.11.0.255") == b"SN-DLMS-7"
        assert value(c, I.DATA, "0.0.0.2.8.255") == IMAGE_SIGNATURE          # the running image's signature
        visible = _object_list(c)
        assert (8, CLOCK) in visible and (15, "0.0.40.0.1.255") in visible
        assert (3, "1.0.1.8.0.255") not in visible
        with pytest.raises(DataResultError, match="OBJECT_UNDEFINED"):
            c.get(attribute(I.REGISTER, "1.0.1.8.0.255", 2))
        # read-only: the clock cannot be set by the public client
        answer = c.set(attribute(I.CLOCK, CLOCK, 2), b"\x09\x0c" + _date_time(clock))
        assert answer.result != enumerations.DataAccessResult.SUCCESS


def test_management_clients_with_lls_and_hls_gmac(meter):
    keys = meter.keys()
    with meter.lls(keys["lls_password"].encode()).session() as c:
        assert len(_object_list(c)) > 40
        assert value(c, I.REGISTER, "1.0.1.8.0.255", 3) == [0, 30]          # scaler 0, Wh
    with meter.management().session() as c:
        listed = _object_list(c)
        assert (7, LOAD_PROFILE) in listed and (5, "1.0.1.4.0.255") in listed and (9, "0.0.10.0.1.255") in listed
        assert value(c, I.REGISTER, "1.0.32.7.0.255", 3) == [-2, 35]        # 0.01 V
        assert value(c, I.DEMAND_REGISTER, "1.0.1.4.0.255", 4) == [-1, 27]  # 0.1 W
        assert value(c, I.DEMAND_REGISTER, "1.0.1.4.0.255", 8) == 15 * 60
    with pytest.raises(DlmsClientException, match="REJECTED"), meter.lls(b"not-the-password").session():
        pass


def test_hls_with_wrong_keys_is_refused(meter):
    keys = meter.keys()
    ek, ak = bytes.fromhex(keys["ek"]), bytes.fromhex(keys["ak"])
    wrong = bytes(16)
    for bad_ek, bad_ak in ((wrong, ak), (ek, wrong), (wrong, wrong)):
        with pytest.raises((DlmsClientException, HLSError)), meter.hls(bad_ek, bad_ak).session():
            pass
    with meter.hls(ek, ak).session() as c:                      # the right keys still pass after the refusals
        assert value(c, I.DATA, "0.0.96.11.0.255") == b"SN-DLMS-7"
        # each refusal is a security event of the meter's event log, which the event log profile carries
        events = _rows(c.get(attribute(I.PROFILE_GENERIC, "0.0.99.98.0.255", 2)))
        assert any(r[1] == "dlms" and "login_invalid" in r[2] for r in events), events[-5:]


def _modbus_values(client: ModbusTcpClient, names: list[str]) -> dict[str, float]:
    points = points_by_name()
    out = {}
    for name in names:
        m = points[name].mapping("modbus")
        size = {"float32": 2, "s64": 4}[m["format"]]
        raw = b"".join(r.to_bytes(2, "big") for r in client.read_holding_registers(m["address"], count=size).registers)
        number = struct.unpack(">f", raw)[0] if size == 2 else int.from_bytes(raw, "big", signed=True)
        out[name] = number / float(m.get("scale", 1.0))
    return out


def test_registers_agree_with_modbus_at_the_same_moment(meter):
    names = {"v_an": "1.0.32.7.0.255", "p_total": "1.0.16.7.0.255", "wh_delivered": "1.0.1.8.0.255"}
    mb = ModbusTcpClient("127.0.0.1", port=meter.modbus, timeout=5)
    assert mb.connect()
    try:
        with meter.management().session() as c:
            for _ in range(20):
                before = _modbus_values(mb, list(names))
                dlms, step = {}, {}
                for name, obis in names.items():
                    scaler, _unit = value(c, I.REGISTER, obis, 3)
                    dlms[name], step[name] = value(c, I.REGISTER, obis) * 10.0 ** scaler, 10.0 ** scaler
                after = _modbus_values(mb, list(names))
                if before == after:                  # no publish in between: one moment
                    break
                time.sleep(0.1)
            else:
                pytest.fail("the values changed during every attempt")
    finally:
        mb.close()
    # the same value within the resolution of each side: DLMS's scaler, Modbus's float32
    for name in ("v_an", "p_total"):
        assert abs(dlms[name] - before[name]) <= step[name] / 2 + abs(before[name]) * 1e-6, name
    assert abs(dlms["wh_delivered"] - before["wh_delivered"]) <= 1.0
    assert before["v_an"] > 0


def test_clock_set_goes_to_the_time_service(meter):
    with meter.management().session() as c:
        near = datetime.now(timezone.utc) + timedelta(seconds=0.2)
        answer = c.set(attribute(I.CLOCK, CLOCK, 2), b"\x09\x0c" + _date_time(near))
        assert answer.result == enumerations.DataAccessResult.SUCCESS
        # a time the time service cannot apply here (no chrony on the test host) is its refusal, not ours
        far = datetime(2030, 1, 1, tzinfo=timezone.utc)
        answer = c.set(attribute(I.CLOCK, CLOCK, 2), b"\x09\x0c" + _date_time(far))
        assert answer.result == enumerations.DataAccessResult.TEMPORARY_FAILURE
        answer = c.set(attribute(I.CLOCK, CLOCK, 2), b"\x09\x03nop")
        assert answer.result == enumerations.DataAccessResult.TYPE_UNMATCHED
    out = meter.output()
    assert "time.set" in out and "chrony" in out


def test_load_profile_by_range_and_by_entry(meter):
    start = datetime.now(timezone.utc) - timedelta(seconds=2)
    with meter.management().session() as c:
        # two event records in the load profile: a demand reset and a billing-period reset, run as DLMS scripts
        for script in (1, 2):
            c.action(method=_script(), data=b"\x12" + script.to_bytes(2, "big"))
        capture = value(c, I.PROFILE_GENERIC, LOAD_PROFILE, 3)
        assert capture[0][:3] == [8, bytes([0, 0, 1, 0, 0, 255]), 2]
        rows = []
        deadline = time.monotonic() + 20
        while len(rows) < 2 and time.monotonic() < deadline:
            descriptor = selective_access.RangeDescriptor(
                restricting_object=CaptureObject(cosem_attribute=attribute(I.CLOCK, CLOCK, 2)),
                from_value=start, to_value=datetime.now(timezone.utc) + timedelta(minutes=1))
            rows = _rows(c.get(attribute(I.PROFILE_GENERIC, LOAD_PROFILE, 2), access_descriptor=descriptor))
            time.sleep(0.5)
        assert len(rows) >= 2, rows
        assert all(len(r) == len(capture) for r in rows)
        stamps = [_clock(r[0]) for r in rows]
        assert all(start - timedelta(seconds=1) <= s for s in stamps)
        from firmware.revenue.loadprofile import FLAGS
        flags = [r[1] for r in rows]
        assert any(f & FLAGS["demand_reset"] for f in flags) and any(f & FLAGS["bpr"] for f in flags)
        # a range in the past holds none of them
        old = selective_access.RangeDescriptor(
            restricting_object=CaptureObject(cosem_attribute=attribute(I.CLOCK, CLOCK, 2)),
            from_value=datetime(2001, 1, 1, tzinfo=timezone.utc), to_value=datetime(2001, 1, 2, tzinfo=timezone.utc))
        assert _rows(c.get(attribute(I.PROFILE_GENERIC, LOAD_PROFILE, 2), access_descriptor=old)) == []
        # by entry: the last two records, columns 1 and 2 (time and status) only, against the last two of a range
        # read while no record was added (the meter closes intervals and logs events as it goes)
        for _ in range(5):
            entries = value(c, I.PROFILE_GENERIC, LOAD_PROFILE, 7)
            by_entry = _rows(c.get(attribute(I.PROFILE_GENERIC, LOAD_PROFILE, 2),
                                   access_descriptor=Entries(entries - 1, entries, 1, 2)))
            descriptor = selective_access.RangeDescriptor(
                restricting_object=CaptureObject(cosem_attribute=attribute(I.CLOCK, CLOCK, 2)),
                from_value=start, to_value=datetime.now(timezone.utc) + timedelta(minutes=1))
            latest = _rows(c.get(attribute(I.PROFILE_GENERIC, LOAD_PROFILE, 2), access_descriptor=descriptor))
            if value(c, I.PROFILE_GENERIC, LOAD_PROFILE, 7) == entries:
                break
        assert entries >= 2
        assert [len(r) for r in by_entry] == [2, 2]
        assert [r[1] for r in by_entry] == [r[1] for r in latest[-2:]]
        assert [r[0] for r in by_entry] == [r[0] for r in latest[-2:]]
        # the event log holds the two resets' records too
        events = _rows(c.get(attribute(I.PROFILE_GENERIC, "0.0.99.98.0.255", 2)))
        assert events and all(len(r) == 3 for r in events)


class Entries(selective_access.EntryDescriptor):
    """dlms-cosem leaves the entry descriptor's encoding out: the structure of four numbers, here."""

    def to_bytes(self) -> bytes:
        return (bytes([self.ACCESS_DESCRIPTOR]) + b"\x02\x04" + b"\x06" + self.from_entry.to_bytes(4, "big")
                + b"\x06" + self.to_entry.to_bytes(4, "big") + b"\x12" + self.from_selected_value.to_bytes(2, "big")
                + b"\x12" + self.to_selected_value.to_bytes(2, "big"))


def _script():
    from dlms_cosem.cosem import CosemMethod
    return CosemMethod(enumerations.CosemInterface.SCRIPT_TABLE, Obis(0, 0, 10, 0, 1, 255), 1)


def _rows(raw: bytes) -> list:
    from dlms_cosem import utils
    parsed = utils.parse_as_dlms_data(raw)
    return list(parsed or [])


def test_hdlc_on_the_serial_line(meter):
    with meter.public(meter.hdlc(16)).session() as c:
        assert value(c, I.DATA, "0.0.96.11.0.255") == b"SN-DLMS-7"
        before, clock, after = _read_clock(c)
        assert before <= clock <= after
    keys = meter.keys()
    # HLS-GMAC over HDLC, and a long object list: many segments of at most 128 bytes
    with meter.hls(bytes.fromhex(keys["ek"]), bytes.fromhex(keys["ak"]), meter.hdlc(1)).session() as c:
        assert len(_object_list(c)) > 40


def test_invocation_counter_survives_kill_9(meter):
    keys = meter.keys()
    ek, ak = bytes.fromhex(keys["ek"]), bytes.fromhex(keys["ak"])
    client = meter.hls(ek, ak)
    with client.session() as c:
        value(c, I.CLOCK, CLOCK)
    before = client.dlms_connection.meter_invocation_counter
    assert before > 0
    os.kill(meter.comms_pid(), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        try:
            client = meter.hls(ek, ak)
            with client.session() as c:
                value(c, I.CLOCK, CLOCK)
            break
        except (OSError, DlmsClientException, CommunicationError):
            assert time.monotonic() < deadline, meter.output()[-3000:]
            time.sleep(1)
    assert client.dlms_connection.meter_invocation_counter > before


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _wrapper(apdu: bytes, source: int = 16) -> bytes:
    return (1).to_bytes(2, "big") + source.to_bytes(2, "big") + (1).to_bytes(2, "big") + len(apdu).to_bytes(2, "big") \
        + apdu


FLOOD = 2_000 if os.environ.get("CI") else 10_000     # the 10,000 of each run in CI too: tests/unit/test_dlms_fuzz.py


@pytest.mark.slow
def test_malformed_apdus_and_frames_from_several_addresses_leave_the_server_serving(meter):
    """``FLOOD`` malformed APDUs over TCP (from four loopback addresses) and as many malformed HDLC frames on the
    line: the comms service neither dies nor grows, and answers a head-end afterwards."""
    import random
    import socket

    rng = random.Random(4059)
    pid = meter.comms_pid()
    aarq = bytes.fromhex("601da109060760857405080101be10040e01000000065f1f040060fe9fffff")
    seeds = [aarq, bytes.fromhex("c001c100080000010000ff0200"), bytes.fromhex("c001c100070100630100ff0201010204"),
             bytes.fromhex("c301c100090000000a0001ff01011201"), bytes.fromhex("c101c100080000010000ff0200090c07")]

    def mutated() -> bytes:
        b = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            if b and rng.random() < 0.5:
                b[rng.randrange(len(b))] = rng.randrange(256)
            elif b:
                del b[rng.randrange(len(b)):]
            else:
                b += rng.randbytes(rng.randint(1, 16))
        return bytes(b)

    def read_frame(s: socket.socket) -> bytes:
        got = b""
        while len(got) < 8 or len(got) < 8 + int.from_bytes(got[6:8], "big"):
            chunk = s.recv(65536)
            assert chunk, "the server closed the connection"
            got += chunk
        return got

    def flood_tcp(count: int, address: str) -> None:
        sent = 0
        deadline = time.monotonic() + 120
        while sent < count:
            assert time.monotonic() < deadline, f"{sent} of {count} sent"
            with socket.socket() as s:
                s.bind((address, 0))
                s.settimeout(5)
                s.connect(("127.0.0.1", meter.port))
                for _ in range(min(500, count - sent)):
                    s.sendall(_wrapper(aarq))
                    read_frame(s)                            # the AARE
                    s.sendall(_wrapper(mutated() or b"\x00"))  # every non-empty APDU is answered
                    read_frame(s)
                    sent += 1

    flood_tcp(1000, "127.0.0.2")                     # warm up, then measure
    before = _rss_kib(pid)
    for k in range(4):
        flood_tcp(FLOOD // 4, f"127.0.0.{k + 2}")
    tcp_growth = _rss_kib(pid) - before

    import serial

    from firmware.comms.dlms import hdlc
    line = serial.Serial(str(meter.client_tty), 115200, timeout=0.05)
    try:
        addr, client = hdlc.server_address(1, 17), bytes([(16 << 1) | 1])
        frames = [hdlc.build_frame(addr, client, 0x93), hdlc.build_frame(addr, client, 0x10, hdlc.LLC_REQUEST + aarq),
                  hdlc.build_frame(addr, client, 0x32, hdlc.LLC_REQUEST + seeds[1])]
        before = _rss_kib(pid)
        for i in range(FLOOD):
            f = bytearray(rng.choice(frames))
            f[rng.randrange(1, len(f) - 1)] = rng.randrange(256)
            line.write(bytes(f))
            if i % 100 == 0:
                line.read(65536)
        line.write(hdlc.build_frame(addr, client, 0x53))
        time.sleep(1)
        line.read(65536)
    finally:
        line.close()
    hdlc_growth = _rss_kib(pid) - before
    assert meter.comms_pid() == pid, "the comms service was restarted"
    assert tcp_growth < 8 * 1024 and hdlc_growth < 8 * 1024, (tcp_growth, hdlc_growth)
    with meter.public().session() as c:
        assert value(c, I.DATA, "0.0.96.11.0.255") == b"SN-DLMS-7"
    with meter.public(meter.hdlc(16)).session() as c:
        assert value(c, I.DATA, "0.0.96.11.0.255") == b"SN-DLMS-7"


def test_connections_are_limited_per_address(meter):
    import socket

    held = []
    try:
        for _ in range(2):
            s = socket.socket()
            s.bind(("127.0.0.9", 0))
            s.connect(("127.0.0.1", meter.port))
            held.append(s)
        time.sleep(0.3)
        extra = socket.socket()
        extra.bind(("127.0.0.9", 0))
        extra.settimeout(5)
        extra.connect(("127.0.0.1", meter.port))
        assert extra.recv(16) == b""                   # a third from the same address is closed at once
        extra.close()
        # another address is served meanwhile
        with meter.public(meter.tcp(16)).session() as c:
            assert value(c, I.DATA, "0.0.96.11.0.255") == b"SN-DLMS-7"
    finally:
        for s in held:
            s.close()
