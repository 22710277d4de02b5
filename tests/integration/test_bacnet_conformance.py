"""The BACnet device as ASHRAE 135 says it answers, checked with frames built here from the standard's encoding
(Clause 20) and sent over a plain UDP socket, not through the stack the meter uses: malformed requests get a
Reject or an Abort, a value of the wrong type an Error, Property_List leaves out the four properties every
object has, COV_Increment is not 0 and is writable, and a value written as it is changes nothing."""
from __future__ import annotations

import asyncio
import struct

import pytest

from firmware.comms.bacnet.settings import CT_PRIMARY_RANGE_A, max_power_kw
from firmware.config import meter_schema
from firmware.config.store import load_file
from tests.integration.bacnet_frames import (
    ANALOG_INPUT, ANALOG_VALUE, DEVICE, TREND_LOG, COV_INCREMENT, OBJECT_IDENTIFIER, OBJECT_NAME, OBJECT_TYPE,
    PRESENT_VALUE, LOCATION, LOG_BUFFER, PROPERTY_LIST, SIMPLE_ACK, REJECT, ABORT, READ_PROPERTY, WRITE_PROPERTY,
    READ_RANGE, ATOMIC_READ_FILE, REJECT_INVALID_PARAMETER_DATA_TYPE, REJECT_INVALID_TAG,
    REJECT_MISSING_REQUIRED_PARAMETER, REJECT_UNRECOGNIZED_SERVICE, ABORT_SEGMENTATION_NOT_SUPPORTED,
    ERROR_CLASS_PROPERTY, INVALID_DATA_TYPE, VALUE_OUT_OF_RANGE, object_id, context, unsigned, real, request,
    read_property, write_property, Peer, port_of, error_of, complex_ack_value, enumerated_list,
)
from tests.integration.bacnet_support import DEVICE_INSTANCE, bacnet_rig


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


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
