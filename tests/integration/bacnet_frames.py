"""BACnet/IP frames built here from ASHRAE 135's encoding (Clause 20) and sent over a plain UDP socket: a peer
that shares no code with the stack the meter uses."""
from __future__ import annotations

import asyncio
import socket
import struct

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
