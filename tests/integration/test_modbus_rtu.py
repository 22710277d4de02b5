"""Modbus RTU server on pseudo-terminals: mbpoll through a socat pair, pymodbus' serial client, broadcast,
unit 248, and two meters sharing one emulated RS-485 line (each silent for the other's unit id).

Pseudo-terminals here refuse a parity change (EINVAL from tcsetattr), so the lines run 8N1; the other
framings' termios settings are checked in tests/unit/test_modbus_rtu.py."""
import struct
import time

import pytest
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu import ExceptionResponse

from firmware.comms.modbus.rtu_server import ModbusRtuServer
from tests.integration.modbus_support import VALUES, Bus, LoopThread, Meter, SocatPair, mbpoll, mbpoll_raw
from tests.integration.test_modbus_tcp import ENERGIES, FLOATS

BAUD = 19200


@pytest.fixture
def line(tmp_path):
    pair = SocatPair(str(tmp_path))
    loop = LoopThread()
    meter = Meter()
    server = ModbusRtuServer(meter.handler, pair.meter, BAUD, "8N1", unit=7)
    loop.run(server.start())
    yield pair, meter, server
    loop.run(server.stop())
    loop.close()
    meter.close()
    pair.close()


def rtu(pair, unit, *args):
    return ("-m", "rtu", "-b", str(BAUD), "-P", "none", "-a", str(unit), *args, pair.client)


def serial_client(path, timeout=0.5):
    client = ModbusSerialClient(path, baudrate=BAUD, bytesize=8, parity="N", stopbits=1, timeout=timeout,
                                retries=0)
    assert client.connect()
    return client


def test_mbpoll_over_rtu_reads_values_matching_the_snapshot(line):
    pair, meter, server = line
    got = {}
    for start, count in ((2999, 6), (3009, 1), (3019, 9), (3053, 12), (3083, 1), (3109, 2)):
        got.update(mbpoll(*rtu(pair, 7, "-t", "4:float", "-B", "-r", str(start), "-c", str(count))))
    for address, (name, scale) in FLOATS.items():
        assert float(got[address]) == pytest.approx(VALUES[name] * scale, rel=1e-5), name
    words = mbpoll(*rtu(pair, 7, "-t", "4:hex", "-r", "3203", "-c", "48"))
    for address, name in ENERGIES.items():
        raw = struct.pack(">4H", *(int(words[address + k], 16) for k in range(4)))
        assert struct.unpack(">q", raw)[0] == round(VALUES[name]), name


def test_mbpoll_over_rtu_exceptions_and_other_units(line):
    pair, meter, server = line
    bad = mbpoll_raw(*rtu(pair, 7, "-t", "4:hex", "-r", "3028", "-c", "2"))
    assert bad.returncode != 0 and "Illegal data value" in bad.stderr
    other = mbpoll_raw(*rtu(pair, 8, "-t", "4:hex", "-r", "3027", "-c", "2", "-o", "0.3"))
    assert other.returncode != 0 and "timed out" in (other.stdout + other.stderr).lower()
    assert server.stats["other_units"] >= 1


def test_pymodbus_over_rtu(line):
    pair, meter, server = line
    client = serial_client(pair.client)
    rr = client.read_holding_registers(3027, count=2, device_id=248)     # libmodbus refuses unit 248
    assert client.convert_from_registers(rr.registers, client.DATATYPE.FLOAT32) == pytest.approx(230.12)
    rr = client.read_input_registers(2999, count=112, device_id=7)
    assert not rr.isError() and rr.registers[3007 - 2999] == 0x8000
    rr = client.read_holding_registers(3205, count=2, device_id=7)
    assert isinstance(rr, ExceptionResponse) and rr.exception_code == 3
    info = client.read_device_information(read_code=1, device_id=7)
    assert info.information[0] == b"OpenMeter"
    assert not client.write_register(5003, 1, device_id=7).isError()
    with pytest.raises(ModbusIOException):
        client.write_register(3007, 1, device_id=7)         # unmapped: no answer
    client.close()
    assert meter.ran == ["cmd_demand_sync"]


def _wait(predicate, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_broadcast_runs_fc16_only_and_never_answers(line):
    pair, meter, server = line
    client = serial_client(pair.client, timeout=0.3)
    client.write_registers(5003, [1], device_id=0, no_response_expected=True)
    assert _wait(lambda: meter.ran == ["cmd_demand_sync"])
    client.write_register(5003, 1, device_id=0, no_response_expected=True)     # FC 6 broadcast: ignored
    client.write_coil(3, True, device_id=0, no_response_expected=True)         # FC 5 broadcast: ignored
    client.read_holding_registers(3027, count=2, device_id=0, no_response_expected=True)
    assert _wait(lambda: server.stats["frames"] >= 4)
    time.sleep(0.1)
    assert meter.ran == ["cmd_demand_sync"]
    assert server.stats["answered"] == 0 and server.stats["broadcasts"] == 1
    # The line is still in step: a normal request is answered.
    assert not client.read_holding_registers(3027, count=2, device_id=7).isError()
    client.close()


def test_two_meters_on_one_line_each_silent_for_the_other():
    bus = Bus(3)
    loop = LoopThread()
    meters = [Meter(), Meter()]
    meters[1].snapshot.publish({"v_an": 119.5})
    servers = [ModbusRtuServer(m.handler, bus.paths[i], BAUD, "8N1", unit=u)
               for i, (m, u) in enumerate(zip(meters, (1, 2)))]
    try:
        for s in servers:
            loop.run(s.start())
        client = ModbusSerialClient(bus.paths[2], baudrate=BAUD, bytesize=8, parity="N", stopbits=1,
                                    timeout=0.5, retries=0)
        assert client.connect()
        for _ in range(10):
            for unit, expected in ((1, 230.12), (2, 119.5)):
                rr = client.read_holding_registers(3027, count=2, device_id=unit)
                assert not rr.isError(), rr
                value = client.convert_from_registers(rr.registers, client.DATATYPE.FLOAT32)
                assert value == pytest.approx(expected, rel=1e-6)
        with pytest.raises(ModbusIOException):
            client.read_holding_registers(3027, count=2, device_id=3)           # nobody answers
        assert not client.write_register(5003, 1, device_id=2).isError()
        client.close()
        for s in servers:
            # Each heard the other's 10 requests and 10 responses (and the request to unit 3): none answered.
            assert s.stats["answered"] == 10 + (s.unit == 2)
            assert s.stats["other_units"] >= 21
        assert meters[0].ran == [] and meters[1].ran == ["cmd_demand_sync"]
    finally:
        for s in servers:
            loop.run(s.stop())
        loop.close()
        for m in meters:
            m.close()
        bus.close()
