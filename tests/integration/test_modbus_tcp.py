"""Modbus TCP server on loopback: mbpoll (libmodbus) as the independent client, pymodbus' client for the rest.

Values are compared with what was published in a real measurement snapshot; float32 registers carry 24-bit
mantissas, so floats compare to within 1e-6 relative (and mbpoll prints 6 significant digits).
"""
import asyncio
import contextlib
import socket
import struct
import time

import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu import ExceptionResponse

from firmware.comms.modbus.handler import Access
from firmware.comms.modbus.tcp import ModbusTcpServer
from hal.errors import AccessDenied
from tests.integration.modbus_support import VALUES, LoopThread, Meter, mbpoll, mbpoll_raw

FLOATS = {  # address: (point, register scale)
    2999: ("i_a", 1), 3001: ("i_b", 1), 3003: ("i_c", 1), 3005: ("i_n", 1), 3009: ("i_avg", 1),
    3019: ("v_ab", 1), 3021: ("v_bc", 1), 3023: ("v_ca", 1), 3025: ("v_ll_avg", 1), 3027: ("v_an", 1),
    3029: ("v_bn", 1), 3031: ("v_cn", 1), 3035: ("v_ln_avg", 1),
    3053: ("p_a", 1e-3), 3055: ("p_b", 1e-3), 3057: ("p_c", 1e-3), 3059: ("p_total", 1e-3),
    3061: ("q_a", 1e-3), 3063: ("q_b", 1e-3), 3065: ("q_c", 1e-3), 3067: ("q_total", 1e-3),
    3069: ("s_a", 1e-3), 3071: ("s_b", 1e-3), 3073: ("s_c", 1e-3), 3075: ("s_total", 1e-3),
    3083: ("pf_total", 1), 3109: ("frequency", 1), 3111: ("frequency_1cycle", 1),
}
ENERGIES = {3203: "wh_delivered", 3207: "wh_received", 3211: "wh_del_plus_rec", 3215: "wh_del_minus_rec",
            3219: "varh_delivered", 3223: "varh_received", 3227: "varh_del_plus_rec",
            3231: "varh_del_minus_rec", 3235: "vah_delivered", 3239: "vah_received", 3243: "vah_del_plus_rec",
            3247: "vah_del_minus_rec"}


class Running:
    def __init__(self, access=Access.READ_WRITE, run_command=None, **server_args):
        self.loop = LoopThread()
        self.meter = Meter(access, run_command)
        self.server = ModbusTcpServer(self.meter.handler, "127.0.0.1", 0, **server_args)
        self.loop.run(self.server.start())
        self.port = self.server.port

    def client(self, timeout=1.0):
        client = ModbusTcpClient("127.0.0.1", port=self.port, timeout=timeout, retries=0)
        assert client.connect()
        return client

    def close(self):
        self.loop.run(self.server.stop())
        self.loop.close()
        self.meter.close()


@pytest.fixture
def running():
    r = Running()
    yield r
    r.close()


def tcp(port, *args):
    return ("-m", "tcp", "-p", str(port), *args, "127.0.0.1")


def test_mbpoll_reads_floats_matching_the_snapshot(running):
    for table in ("4:float", "3:float"):            # holding (FC 3) and input (FC 4) registers
        got = {}
        for start, count in ((2999, 6), (3009, 1), (3019, 9), (3053, 12), (3077, 1), (3083, 1), (3109, 2)):
            got.update(mbpoll(*tcp(running.port, "-t", table, "-B", "-r", str(start), "-c", str(count))))
        for address, (name, scale) in FLOATS.items():
            assert float(got[address]) == pytest.approx(VALUES[name] * scale, rel=1e-5), name
        assert got[3077] in ("nan", "-nan")         # pf_a not published: 0xFFC00000 reads as NaN
        assert float(got[3007]) == pytest.approx(struct.unpack(">f", b"\x80\0\x80\0")[0])   # 2 unmapped words


def test_mbpoll_reads_s64_energies(running):
    got = mbpoll(*tcp(running.port, "-t", "4:hex", "-r", "3203", "-c", "48"))
    for address, name in ENERGIES.items():
        words = [int(got[address + k], 16) for k in range(4)]
        value = struct.unpack(">q", struct.pack(">4H", *words))[0]
        assert value == round(VALUES[name]), name


def test_mbpoll_sees_exceptions(running):
    bad_value = mbpoll_raw(*tcp(running.port, "-t", "4:hex", "-r", "3000", "-c", "2"))
    assert bad_value.returncode != 0 and "Illegal data value" in bad_value.stderr
    bad_address = mbpoll_raw(*tcp(running.port, "-t", "4:hex", "-r", "2990", "-c", "2"))
    assert bad_address.returncode != 0 and "Illegal data address" in bad_address.stderr


def test_mbpoll_runs_a_command(running):
    proc = mbpoll_raw(*tcp(running.port, "-t", "4", "-r", "5003"), "1")
    assert proc.returncode == 0, proc.stderr
    assert running.meter.ran == ["cmd_demand_sync"]


def test_time_set_takes_the_written_utc_seconds(running):
    """The time set register (5004, u32, both words in one FC 16) hands the UTC seconds to time.set as a
    protocol time set; a half write and a write of one word are refused, and nothing runs."""
    utc = 1_780_000_000
    proc = mbpoll_raw(*tcp(running.port, "-t", "4:int", "-B", "-r", "5004"), str(utc))
    assert proc.returncode == 0, proc.stderr
    assert running.meter.ran == ["cmd_time_set"]
    assert running.meter.args == [{"source": "protocol", "utc": utc}]
    client = running.client()
    half = client.write_register(5004, 0x6A18)
    assert isinstance(half, ExceptionResponse) and half.exception_code == 3
    client.close()
    assert running.meter.ran == ["cmd_time_set"]


def test_block_read_and_new_values(running):
    client = running.client()
    rr = client.read_holding_registers(2999, count=112)
    assert not rr.isError() and len(rr.registers) == 112
    assert rr.registers[3007 - 2999] == 0x8000 and rr.registers[3008 - 2999] == 0x8000
    assert rr.registers[3077 - 2999: 3079 - 2999] == [0xFFC0, 0x0000]      # pf_a published as NaN
    running.meter.snapshot.publish({"v_an": 120.5})
    rr = client.read_holding_registers(3027, count=2)
    assert client.convert_from_registers(rr.registers, client.DATATYPE.FLOAT32) == 120.5
    client.close()


@pytest.mark.parametrize("call,code", [
    (lambda c: c.read_holding_registers(3000, count=2), 3),
    (lambda c: c.read_holding_registers(3113, count=2), 2),
    (lambda c: c.read_input_registers(3203, count=3), 3),
    (lambda c: c.read_coils(0, count=17), 2),
    (lambda c: c.read_discrete_inputs(32, count=1), 2),
    (lambda c: c.write_register(3027, 1), 3),
    (lambda c: c.write_registers(3027, [0, 0]), 3),
    (lambda c: c.write_register(5000, 7), 3),
    (lambda c: c.write_coil(40, True), None),
    (lambda c: c.read_device_information(read_code=4, object_id=0x40), 2),
    (lambda c: c.read_fifo_queue(address=0), 1),
])
def test_exceptions_over_tcp(running, call, code):
    client = running.client(timeout=0.5)
    if code is None:
        with pytest.raises(ModbusIOException):       # no response at all
            call(client)
    else:
        rr = call(client)
        assert isinstance(rr, ExceptionResponse) and rr.exception_code == code
    client.close()
    assert running.meter.ran == []


def test_write_to_unmapped_register_gets_no_response_then_server_still_serves(running):
    client = running.client(timeout=0.5)
    with pytest.raises(ModbusIOException):
        client.write_register(3007, 1)
    client.close()
    client = running.client()
    assert not client.read_holding_registers(2999, count=2).isError()
    client.close()


def test_identity_and_commands(running):
    client = running.client()
    info = client.read_device_information(read_code=2)
    assert info.information[0] == b"OpenMeter" and info.information[6] == b"test-meter"
    ext = client.read_device_information(read_code=4, object_id=0x80)
    assert ext.information[0x80] == b"SIM-000042"
    rid = client.report_device_id()
    # Server id 1, run indicator ON, then the identity text (pymodbus keeps the last byte apart as "status").
    assert not rid.isError() and rid.identifier.startswith(b"\x01\xffOpenMeter")
    assert not client.write_coil(0, True).isError()
    assert not client.write_registers(5001, [1, 1]).isError()
    assert running.meter.ran == ["cmd_demand_reset", "cmd_energy_reset", "cmd_billing_reset"]
    client.close()


def test_revenue_lock_refuses_over_tcp(running):
    running.meter.snapshot.publish({"revenue_locked": 1.0})
    client = running.client()
    rr = client.write_register(5001, 1)
    assert isinstance(rr, ExceptionResponse) and rr.exception_code == 2
    assert not client.write_register(5003, 1).isError()
    assert client.read_discrete_inputs(0, count=1).bits[0] is True
    client.close()
    assert running.meter.ran == ["cmd_demand_sync"]


def test_refusal_from_the_owning_service():
    async def refuse(cmd, args):
        raise AccessDenied("revenue lock engaged")

    r = Running(run_command=refuse)
    try:
        client = r.client()
        rr = client.write_register(5000, 1)
        assert isinstance(rr, ExceptionResponse) and rr.exception_code == 2
        client.close()
    finally:
        r.close()


@pytest.mark.parametrize("access", [Access.READ_ONLY, Access.NONE])
def test_access_modes_over_tcp(access):
    r = Running(access)
    try:
        client = r.client()
        rr = client.write_register(5000, 1)
        assert isinstance(rr, ExceptionResponse) and rr.exception_code == 2
        read = client.read_holding_registers(3027, count=2)
        assert read.isError() == (access is Access.NONE)
        client.close()
        assert r.meter.ran == []
    finally:
        r.close()


def _mbap_read(sock, tid):
    sock.sendall(struct.pack(">HHHBBHH", tid, 0, 6, 1, 3, 3027, 2))
    reply = sock.recv(64)
    return struct.unpack(">HHHBBB", reply[:9])


def test_connection_pool_of_eight():
    r = Running(max_connections=8)
    socks = []
    try:
        for i in range(8):
            s = socket.create_connection(("127.0.0.1", r.port), timeout=2)
            socks.append(s)
            assert _mbap_read(s, i)[4] == 3
        ninth = socket.create_connection(("127.0.0.1", r.port), timeout=2)
        ninth.sendall(struct.pack(">HHHBBHH", 9, 0, 6, 1, 3, 3027, 2))
        with contextlib.suppress(ConnectionResetError):
            assert ninth.recv(64) == b""        # closed without an answer
        ninth.close()
        assert r.server.stats["refused"] == 1
        socks.pop().close()                     # a freed slot is usable again
        deadline = time.monotonic() + 5
        while len(r.server.connections) > 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        again = socket.create_connection(("127.0.0.1", r.port), timeout=2)
        socks.append(again)
        assert _mbap_read(again, 10)[4] == 3
    finally:
        for s in socks:
            s.close()
        r.close()


def _connect_from(source, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def test_a_full_pool_makes_room_from_the_address_holding_the_most():
    """A host holding one connection is not pushed out by hosts that open many, even when its connection
    is the oldest that has not yet sent a request."""
    r = Running(max_connections=4, max_per_address=4)
    socks = []
    try:
        lone = _connect_from("127.0.0.1", r.port)          # oldest, and has not asked anything yet
        socks.append(lone)
        deadline = time.monotonic() + 5
        while len(r.server.connections) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(3):
            socks.append(_connect_from("127.0.0.2", r.port))
        while len(r.server.connections) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        socks.append(_connect_from("127.0.0.3", r.port))   # the pool is full: someone must go
        while r.server.stats["evicted"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert r.server.stats["evicted"] == 1 and r.server.stats["refused"] == 0
        assert _mbap_read(lone, 1)[4] == 3                 # the lone host is still served
        assert _mbap_read(socks[-1], 2)[4] == 3            # and so is the newcomer
        with contextlib.suppress(ConnectionResetError):
            socks[1].sendall(struct.pack(">HHHBBHH", 3, 0, 6, 1, 3, 3027, 2))
            assert socks[1].recv(64) == b""                # the crowded host's oldest was closed
    finally:
        for s in socks:
            s.close()
        r.close()


def test_frames_that_are_dropped_do_not_hold_a_place_in_a_full_pool():
    """A client trickling MBAP headers with no PDU (length 0) never made a request: a newcomer may take its
    place, and the reaper does not count those frames as activity."""
    r = Running(max_connections=1)
    socks = []
    try:
        junk = _connect_from("127.0.0.2", r.port)
        socks.append(junk)
        junk.sendall(bytes(7))                  # transaction 0, protocol 0, length 0: dropped
        deadline = time.monotonic() + 5
        while r.server.stats["bad_frames"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        newcomer = _connect_from("127.0.0.3", r.port)
        socks.append(newcomer)
        assert _mbap_read(newcomer, 1)[4] == 3
        assert r.server.stats["evicted"] == 1 and r.server.stats["refused"] == 0
    finally:
        for s in socks:
            s.close()
        r.close()


def test_idle_connection_is_closed():
    r = Running(idle_timeout_s=0.3)
    try:
        s = socket.create_connection(("127.0.0.1", r.port), timeout=3)
        assert _mbap_read(s, 1)[4] == 3
        t0 = time.monotonic()
        assert s.recv(16) == b""                 # the server closes it
        assert 0.25 <= time.monotonic() - t0 < 2.5
        assert r.server.stats["idle_closed"] == 1
        s.close()
    finally:
        r.close()


def test_an_idle_server_sets_no_timer_until_a_client_connects():
    """With no client connected the reaper (idle, frame and write-stall deadlines) waits without a timer, so an
    unused Modbus server never wakes the comms process; a connection wakes it, and the idle deadline then closes
    that connection."""
    r = Running(idle_timeout_s=0.3)

    async def timers():
        await asyncio.sleep(0)                   # the reaper runs to its wait
        return [h for h in asyncio.get_running_loop()._scheduled if not h.cancelled()]

    try:
        assert r.loop.run(timers()) == []
        s = socket.create_connection(("127.0.0.1", r.port), timeout=3)
        assert _mbap_read(s, 1)[4] == 3
        assert s.recv(16) == b""                 # the server closes it
        assert r.server.stats["idle_closed"] == 1
        s.close()
        assert r.loop.run(timers()) == []
    finally:
        r.close()


def test_pipelined_requests_answered_in_order(running):
    s = socket.create_connection(("127.0.0.1", running.port), timeout=2)
    s.sendall(b"".join(struct.pack(">HHHBBHH", tid, 0, 6, 1, 3, 2999, 2) for tid in range(40)))
    data = b""
    while len(data) < 40 * 13:
        chunk = s.recv(4096)
        assert chunk
        data += chunk
    tids = [struct.unpack_from(">H", data, 13 * k)[0] for k in range(40)]
    assert tids == list(range(40))
    s.close()
