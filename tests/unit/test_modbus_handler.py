"""Request handler: every function code and every exception rule of SPEC §7, on the real register map."""
import asyncio
import struct

import pytest

from firmware.comms.modbus.feed import FunctionFeed
from firmware.comms.modbus.handler import Access, Handler
from firmware.comms.modbus.ident import Identity
from firmware.comms.modbus.regmap import build_map
from hal.errors import AccessDenied, IPCError

IDENTITY = Identity("OpenMeter", "OM-1", "0.1.0", "https://example.invalid", "OpenMeter", "OM-CM4",
                    "feeder-7", "SIM-000042")


class Meter:
    """The handler with a values dict the test changes, and a command sink that records what ran."""

    def __init__(self, access=Access.READ_WRITE, fail=None):
        self.values = {"v_an": 230.5, "i_a": 5.25, "frequency": 50.01, "wh_delivered": 123456.0,
                       "revenue_locked": 0.0, "test_mode": 1.0}
        self.ran = []
        self.fail = fail

        async def run(cmd, args):
            if self.fail:
                raise self.fail
            self.ran.append(cmd.point)

        self.handler = Handler(build_map(),
                               FunctionFeed(lambda: self.values, IDENTITY.register_values()).poll,
                               IDENTITY, access, run)

    def __call__(self, pdu_hex_or_bytes):
        pdu = bytes.fromhex(pdu_hex_or_bytes) if isinstance(pdu_hex_or_bytes, str) else pdu_hex_or_bytes
        return asyncio.run(self.handler.handle(pdu))


def req(fc, *words, fmt=None):
    return struct.pack(fmt or ">B" + "H" * len(words), fc, *words)


@pytest.fixture
def meter():
    return Meter()


def test_read_holding_and_input_give_the_same_map(meter):
    for fc in (3, 4):
        reply = meter(req(fc, 3027, 2))
        assert reply[:2] == bytes((fc, 4))
        assert struct.unpack(">f", reply[2:6])[0] == pytest.approx(230.5)


def test_block_read_2999_to_3110(meter):
    reply = meter(req(3, 2999, 112))
    assert reply[:2] == bytes((3, 224)) and len(reply) == 226
    assert struct.unpack(">f", reply[2:6])[0] == 5.25
    assert struct.unpack(">f", reply[2 + 220:2 + 224])[0] == pytest.approx(50.01)


@pytest.mark.parametrize("pdu,code", [
    (req(3, 2999, 0), 3), (req(3, 2999, 126), 3), (req(4, 2999, 0), 3),       # quantity
    (req(3, 2998, 2), 2), (req(3, 3113, 2), 2), (req(3, 65535, 2), 2),        # outside the map
    (req(3, 3000, 2), 3), (req(3, 2999, 1), 3), (req(4, 3204, 4), 3),         # part of a multi-word value
    (req(1, 0, 0), 3), (req(1, 0, 2001), 3), (req(2, 0, 2001), 3),
    (req(1, 100, 1), 2), (req(2, 40, 1), 2),
    (bytes((3, 0x0B, 0xB7, 0)), 3), (req(3, 2999, 2) + b"\0", 3),            # wrong length
    (bytes((7,)), 1), (bytes((8, 0, 0, 0xA5, 0x37)), 1), (bytes((0x18, 0, 0)), 1),   # unsupported FCs
    (bytes((0x41,)), 1), (bytes((101, 0, 1)), 1),
    (bytes((43, 13, 0, 0)), 1),                                              # MEI type 13
    (bytes((43, 14, 5, 0)), 3), (bytes((43, 14, 0, 0)), 3),                  # bad read code
    (bytes((43, 14, 4, 0x42)), 2),                                           # no such object
    (bytes((43, 14, 1)), 3),
    (req(5, 0, 0x1234), 3),                                                  # coil value neither ON nor OFF
    (req(6, 3027, 1), 3), (req(16, 3027, 2, fmt=">BHH") + bytes((4, 0, 1, 0, 1)), 3),   # read-only register
    (req(16, 5000, 2, fmt=">BHH") + bytes((3, 0, 1, 0)), 3),                # byte count mismatch
    (req(16, 5000, 124, fmt=">BHH") + bytes((248,)) + b"\0\1" * 124, 3),    # too many registers
    (req(6, 5000, 2), 3),                                                    # a command runs on 1 only
    (req(15, 0, 2, fmt=">BHH") + bytes((2, 1)), 3),                          # byte count mismatch
])
def test_exceptions(meter, pdu, code):
    reply = meter(pdu)
    assert reply == bytes((pdu[0] | 0x80, code)), reply.hex() if reply else reply
    assert meter.ran == []


@pytest.mark.parametrize("pdu", [
    req(6, 3007, 1),                                        # unmapped word inside a block
    req(6, 200, 1),                                         # outside every block
    req(16, 5004, 3, fmt=">BHH") + bytes((6, 0x6A, 0x18, 0, 0, 0, 1)),  # a command, then an unmapped register
    req(5, 9, 0xFF00),                                      # unmapped coil
    bytes((0x83, 0x01)), bytes((0x80,)), bytes((0, 1, 2)),  # not a request: exception-range or zero FC
    req(15, 3, 2, fmt=">BHH") + bytes((1, 3)),              # coil 3 then unmapped coil 4
    b"",
])
def test_no_response_and_nothing_run(meter, pdu):
    assert meter(pdu) is None
    assert meter.ran == []


def test_commands_by_register_and_coil(meter):
    assert meter(req(6, 5000, 1)) == req(6, 5000, 1)
    assert meter(req(16, 5001, 2, fmt=">BHH") + bytes((4, 0, 1, 0, 1))) == req(16, 5001, 2)
    assert meter(req(5, 3, 0xFF00)) == req(5, 3, 0xFF00)
    assert meter(req(5, 3, 0x0000)) == req(5, 3, 0x0000)      # OFF is accepted and runs nothing
    assert meter(req(15, 0, 4, fmt=">BHH") + bytes((1, 0b0101))) == req(15, 0, 4)
    assert meter.ran == ["cmd_demand_reset", "cmd_energy_reset", "cmd_billing_reset", "cmd_demand_sync",
                         "cmd_demand_reset", "cmd_billing_reset"]
    assert meter(req(1, 0, 4)) == bytes((1, 1, 0))           # command coils read 0


def test_revenue_lock_refuses_revenue_commands_only(meter):
    meter.values["revenue_locked"] = 1.0
    for pdu in (req(6, 5000, 1), req(6, 5001, 1), req(6, 5002, 1), req(5, 1, 0xFF00)):
        assert meter(pdu) == bytes((pdu[0] | 0x80, 2))
    assert meter(req(6, 5003, 1)) == req(6, 5003, 1)          # demand sync changes no revenue data
    assert meter.ran == ["cmd_demand_sync"]
    assert meter(req(2, 0, 2)) == bytes((2, 1, 0b11))         # lock is bit 0, test mode bit 1


def test_owning_service_refusal_and_failure():
    assert Meter(fail=AccessDenied("revenue lock engaged"))(req(6, 5001, 1)) == bytes((0x86, 2))
    assert Meter(fail=IPCError("metrology not running"))(req(6, 5001, 1)) == bytes((0x86, 4))


@pytest.mark.parametrize("access", [Access.READ_ONLY, Access.NONE])
def test_access_modes(access):
    meter = Meter(access)
    assert meter(req(6, 5000, 1)) == bytes((0x86, 2))
    assert meter(req(5, 0, 0xFF00)) == bytes((0x85, 2))
    assert meter(req(6, 3027, 1)) == bytes((0x86, 3))         # read-only register: 03 whatever the access
    assert meter(req(6, 3007, 1)) is None
    read = meter(req(3, 3027, 2))
    if access is Access.NONE:
        assert read == bytes((0x83, 2)) and meter(req(2, 0, 1)) == bytes((0x82, 2))
    else:
        assert read[:2] == bytes((3, 4))
    assert meter.ran == []
    assert meter(bytes((17,)))[0] == 17                      # identity is always served


def test_report_server_id(meter):
    reply = meter(bytes((17,)))
    assert reply[0] == 17 and reply[1] == len(reply) - 2
    assert reply[3] == 0xFF and b"SIM-000042" in reply


def test_device_identification_stream_and_individual(meter):
    reply = meter(bytes((43, 14, 1, 0)))
    assert reply[:7] == bytes((43, 14, 1, 0x83, 0, 0, 3))
    assert reply[7:9] == bytes((0, 9)) and reply[9:18] == b"OpenMeter"
    regular = meter(bytes((43, 14, 2, 0)))
    assert regular[6] == 7
    extended = meter(bytes((43, 14, 3, 0x80)))
    assert extended[6] == 1 and extended[7:9] == bytes((0x80, 10)) and extended[9:] == b"SIM-000042"
    assert meter(bytes((43, 14, 3, 0x55)))[6] == 8           # unknown start object: from the first
    assert meter(bytes((43, 14, 4, 6)))[7:] == bytes((6, 8)) + b"feeder-7"


def test_identity_registers(meter):
    reply = meter(req(3, 89, 10))
    assert reply[2:].rstrip(b"\0") == b"SIM-000042"


def test_values_follow_the_source(meter):
    meter.values["v_an"] = 120.0
    assert struct.unpack(">f", meter(req(3, 3027, 2))[2:])[0] == 120.0
    del meter.values["v_an"]
    assert meter(req(3, 3027, 2))[2:] == b"\xff\xc0\x00\x00"
