"""The BACnet device as ASHRAE 135 says it answers, checked with frames built here from the standard's encoding
(Clause 20) and sent over a plain UDP socket, not through the stack the meter uses: malformed requests get a
Reject or an Abort, a value of the wrong type an Error, Property_List leaves out the four properties every
object has, COV_Increment is not 0 and is writable, and a value written as it is changes nothing."""
from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from firmware.comms.bacnet.settings import CT_PRIMARY_RANGE_A, max_power_kw
from firmware.config import meter_schema
from firmware.config.store import load_file
from tests.integration.bacnet_support import DEVICE_INSTANCE, bacnet_rig

# BACnetObjectType and BACnetPropertyIdentifier values (Clause 21)
ANALOG_INPUT, ANALOG_VALUE, DEVICE, TREND_LOG = 0, 2, 8, 20
COV_INCREMENT, OBJECT_IDENTIFIER, OBJECT_NAME, OBJECT_TYPE, PRESENT_VALUE = 22, 75, 77, 79, 85
LOCATION, LOG_BUFFER, PROPERTY_LIST = 58, 131, 371
# PDU types, services, reasons
CONFIRMED, SIMPLE_ACK, COMPLEX_ACK, ERROR, REJECT, ABORT = 0, 2, 3, 5, 6, 7
READ_PROPERTY, WRITE_PROPERTY, READ_RANGE, ATOMIC_READ_FILE = 12, 15, 26, 6
REJECT_INVALID_PARAMETER_DATA_TYPE, REJECT_INVALID_TAG = 3, 4
REJECT_MISSING_REQUIRED_PARAMETER, REJECT_UNRECOGNIZED_SERVICE = 5, 9
ABORT_SEGMENTATION_NOT_SUPPORTED = 4
ERROR_CLASS_PROPERTY, INVALID_DATA_TYPE, VALUE_OUT_OF_RANGE = 2, 9, 37


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def object_id(kind: int, instance: int) -> bytes:
    return struct.pack(">I", kind << 22 | instance)


def context(number: int, content: bytes) -> bytes:
    assert len(content) <= 4
    return bytes([number << 4 | 0x08 | len(content)]) + content


def unsigned(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def real(value: float) -> bytes:
    return b"\x44" + struct.pack(">f", value)                 # application tag 4, length 4


def request(invoke_id: int, service: int, parameters: bytes, segmented: bool = False) -> bytes:
    """A BVLC Original-Unicast-NPDU carrying a confirmed request (max APDU 1476, no segments accepted)."""
    apdu = bytes([CONFIRMED << 4 | (0x08 if segmented else 0), 0x05, invoke_id])
    apdu += bytes([0, 1]) if segmented else b""                # sequence number, proposed window size
    npdu = b"\x01\x04" + apdu + bytes([service]) + parameters  # version 1, expecting a reply
    return b"\x81\x0a" + struct.pack(">H", 4 + len(npdu)) + npdu


def read_property(invoke_id: int, kind: int, instance: int, prop: int) -> bytes:
    return request(invoke_id, READ_PROPERTY, context(0, object_id(kind, instance)) + context(1, unsigned(prop)))


def write_property(invoke_id: int, kind: int, instance: int, prop: int, value: bytes) -> bytes:
    return request(invoke_id, WRITE_PROPERTY, context(0, object_id(kind, instance)) + context(1, unsigned(prop))
                   + b"\x3e" + value + b"\x3f")


class Peer:
    """A UDP socket on loopback that sends one request and waits (bounded) for its answer's APDU."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)

    async def ask(self, frame: bytes, timeout: float = 3.0) -> bytes | None:
        loop = asyncio.get_running_loop()
        self.sock.sendto(frame, ("127.0.0.1", self.port))
        try:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 2048), timeout)
        except asyncio.TimeoutError:
            return None
        assert data[:2] == b"\x81\x0a" and data[4] == 0x01      # BVLC unicast, NPDU version 1
        control = data[5]
        return data[6 + (2 if control & 0x08 else 0) + (0 if not control & 0x20 else 0):]

    def close(self) -> None:
        self.sock.close()


def port_of(rig) -> int:
    return int(str(rig.target).rsplit(":", 1)[1])


def error_of(apdu: bytes) -> tuple[int, int]:
    """(error class, error code) of an Error PDU: type, invoke ID, service, then two enumerated values."""
    assert apdu[0] >> 4 == ERROR, apdu.hex()
    assert apdu[3] == 0x91 and apdu[5] == 0x91, apdu.hex()
    return apdu[4], apdu[6]


def complex_ack_value(apdu: bytes) -> bytes:
    """The property value of a ReadProperty ComplexAck: what lies between opening and closing tag 3."""
    assert apdu[0] >> 4 == COMPLEX_ACK, apdu.hex()
    start = apdu.index(b"\x3e") + 1
    assert apdu.endswith(b"\x3f")
    return apdu[start:-1]


def enumerated_list(content: bytes) -> list[int]:
    """Application-tagged Enumerated values (tag 9) one after another."""
    out, pos = [], 0
    while pos < len(content):
        tag = content[pos]
        assert tag >> 4 == 9 and not tag & 0x08, content.hex()
        length = tag & 0x07
        out.append(int.from_bytes(content[pos + 1:pos + 1 + length], "big"))
        pos += 1 + length
    return out


def test_malformed_requests_are_rejected_or_aborted(tmp_path):
    async def body():
        async with bacnet_rig(tmp_path) as rig:
            peer = Peer(port_of(rig))
            try:
                cases = {
                    # ReadProperty without its property identifier
                    "no property": (request(1, READ_PROPERTY, context(0, object_id(DEVICE, DEVICE_INSTANCE))),
                                    (REJECT, REJECT_MISSING_REQUIRED_PARAMETER)),
                    # an object identifier tag that says 4 octets and carries 2
                    "truncated": (request(2, READ_PROPERTY, b"\x0c" + object_id(DEVICE, DEVICE_INSTANCE)[:2]),
                                  (REJECT, REJECT_INVALID_TAG)),
                    # ReadRange by position whose count is a REAL, not a signed integer
                    "count type": (request(3, READ_RANGE, context(0, object_id(TREND_LOG, 1))
                                           + context(1, unsigned(LOG_BUFFER)) + b"\x3e\x21\x01" + real(5.0)
                                           + b"\x3f"), (REJECT, REJECT_INVALID_PARAMETER_DATA_TYPE)),
                    # an opening tag never closed
                    "unpaired": (request(4, WRITE_PROPERTY, context(0, object_id(ANALOG_VALUE, 3))
                                         + context(1, unsigned(PRESENT_VALUE)) + b"\x3e" + real(100.0)),
                                 (REJECT, REJECT_INVALID_TAG)),
                    "service not offered": (request(5, ATOMIC_READ_FILE, b""), (REJECT, REJECT_UNRECOGNIZED_SERVICE)),
                    "segmented": (request(6, READ_PROPERTY, context(0, object_id(DEVICE, DEVICE_INSTANCE))
                                          + context(1, unsigned(OBJECT_NAME)), segmented=True),
                                  (ABORT, ABORT_SEGMENTATION_NOT_SUPPORTED)),
                }
                for name, (frame, (kind, reason)) in cases.items():
                    invoke_id = frame[8]
                    answer = await peer.ask(frame)
                    assert answer is not None, f"{name}: no answer"
                    assert answer[0] >> 4 == kind, (name, answer.hex())
                    if kind == ABORT:
                        assert answer[0] & 0x01, (name, "an abort from the server")
                    assert answer[1] == invoke_id and answer[2] == reason, (name, answer.hex())
                # too short to carry an invoke ID: nothing to answer
                assert await peer.ask(b"\x81\x0a\x00\x08\x01\x04\x00\x05", timeout=1.0) is None
                # the device still answers a well-formed request
                answer = await peer.ask(read_property(7, DEVICE, DEVICE_INSTANCE, OBJECT_NAME))
                assert answer is not None and b"SIM-424242" in complex_ack_value(answer)
                # a value of the wrong type on a write: Error PROPERTY / INVALID_DATA_TYPE, not a Reject
                text = b"\x75\x03\x00AB"                              # CharacterString "AB"
                answer = await peer.ask(write_property(8, ANALOG_VALUE, 3, PRESENT_VALUE, text))
                assert answer is not None and error_of(answer) == (ERROR_CLASS_PROPERTY, INVALID_DATA_TYPE)
                assert rig.app.device.counters["rejected"] == 7
            finally:
                peer.close()
    run(body())


def test_property_list_leaves_out_the_four_every_object_has(tmp_path):
    async def body():
        async with bacnet_rig(tmp_path) as rig:
            peer = Peer(port_of(rig))
            try:
                for n, (kind, instance) in enumerate(((ANALOG_INPUT, 1), (ANALOG_VALUE, 3), (DEVICE, DEVICE_INSTANCE),
                                                      (TREND_LOG, 1))):
                    answer = await peer.ask(read_property(10 + n, kind, instance, PROPERTY_LIST))
                    assert answer is not None
                    listed = enumerated_list(complex_ack_value(answer))
                    assert listed and not {OBJECT_IDENTIFIER, OBJECT_NAME, OBJECT_TYPE, PROPERTY_LIST} & set(listed)
                    if kind in (ANALOG_INPUT, ANALOG_VALUE):
                        assert PRESENT_VALUE in listed and COV_INCREMENT in listed
            finally:
                peer.close()
    run(body())


def test_cov_increment_is_not_zero_and_is_written(tmp_path):
    async def body():
        async with bacnet_rig(tmp_path) as rig:
            peer = Peer(port_of(rig))
            try:
                async def cov_increment(kind: int, instance: int) -> float:
                    answer = await peer.ask(read_property(20, kind, instance, COV_INCREMENT))
                    assert answer is not None
                    value = complex_ack_value(answer)
                    assert value[0] == 0x44, value.hex()
                    return struct.unpack(">f", value[1:])[0]

                assert await cov_increment(ANALOG_INPUT, 16) == 1.0           # volts
                assert await cov_increment(ANALOG_INPUT, 11) == pytest.approx(0.1)   # kW
                version = load_file(rig.config_path).version
                answer = await peer.ask(write_property(21, ANALOG_INPUT, 16, COV_INCREMENT, real(0.5)))
                assert answer is not None and answer[0] >> 4 == SIMPLE_ACK, answer.hex()
                assert await cov_increment(ANALOG_INPUT, 16) == 0.5
                saved = load_file(rig.config_path)
                assert saved.version == version + 1
                assert [(e.object, e.increment) for e in saved["bacnet"].cov_increment] == [("AI16", 0.5)]
                answer = await peer.ask(write_property(22, ANALOG_INPUT, 16, COV_INCREMENT, real(-1.0)))
                assert answer is not None and error_of(answer) == (ERROR_CLASS_PROPERTY, VALUE_OUT_OF_RANGE)
                # 0 is the client's choice (every change notifies)
                answer = await peer.ask(write_property(23, ANALOG_VALUE, 3, COV_INCREMENT, real(0.0)))
                assert answer is not None and answer[0] >> 4 == SIMPLE_ACK, answer.hex()
            finally:
                peer.close()
    run(body())


def test_a_value_written_as_it_reads_changes_nothing(tmp_path):
    async def body():
        async with bacnet_rig(tmp_path) as rig:
            peer = Peer(port_of(rig))
            try:
                version = load_file(rig.config_path).version
                # AV3 CT primary 100 A (the rig's), AV6 system voltage as it reads (a REAL of 230 V x sqrt 3)
                answer = await peer.ask(read_property(30, ANALOG_VALUE, 6, PRESENT_VALUE))
                assert answer is not None
                system_voltage = complex_ack_value(answer)
                for n, (instance, value) in enumerate(((3, real(100.0)), (6, system_voltage))):
                    answer = await peer.ask(write_property(31 + n, ANALOG_VALUE, instance, PRESENT_VALUE, value))
                    assert answer is not None and answer[0] >> 4 == SIMPLE_ACK, answer.hex()
                text = b"Installed location not yet identified"           # the default Location
                location = b"\x75" + bytes([len(text) + 1]) + b"\x00" + text   # CharacterString, ANSI X3.4
                answer = await peer.ask(request(33, WRITE_PROPERTY, context(0, object_id(DEVICE, DEVICE_INSTANCE))
                                                 + context(1, unsigned(LOCATION)) + b"\x3e" + location + b"\x3f"))
                assert answer is not None and answer[0] >> 4 == SIMPLE_ACK, answer.hex()
                assert load_file(rig.config_path).version == version
                assert not [c for c in rig.calls if c[0] == "restart"]          # metrology not restarted
                # a new value is a change: saved, and metrology restarted to take it
                answer = await peer.ask(write_property(34, ANALOG_VALUE, 3, PRESENT_VALUE, real(200.0)))
                assert answer is not None and answer[0] >> 4 == SIMPLE_ACK, answer.hex()
                assert load_file(rig.config_path).version == version + 1
                for _ in range(100):
                    if {c[2].get("service") for c in rig.calls if c[0] == "restart"} >= {"acquisition", "metrology"}:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError(f"no restart asked: {rig.calls}")
            finally:
                peer.close()
    run(body())


def test_max_power_covers_the_rated_current():
    """AI76 on a meter still at the device defaults (CT 1:1, In 5 A) and on `make run`'s (CT 5:5 A): the
    maximum power is that of the rated current, at least what the simulated board can draw (5 A, 230 V)."""
    schema = meter_schema()
    default = schema.defaults()
    dev = schema.load({"metrology": {"ct_primary": 5.0, "ct_secondary": 5.0}})
    full_load_kw = 3 * 230.0 * 5.0 / 1000.0
    for config in (default, dev):
        assert max_power_kw(config) == pytest.approx(full_load_kw, rel=1e-6)
    assert CT_PRIMARY_RANGE_A[0] <= dev["metrology"].ct_primary <= CT_PRIMARY_RANGE_A[1]
