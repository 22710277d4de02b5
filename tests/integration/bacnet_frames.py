"""BACnet/IP frames built here from ASHRAE 135's encoding (Clause 20) and sent over a plain UDP socket: a peer
that shares no code with the stack the meter uses."""
from __future__ import annotations

import asyncio
import socket
import struct

# BACnetObjectType and BACnetPropertyIdentifier values (Clause 21)
ANALOG_INPUT, ANALOG_VALUE, DEVICE, TREND_LOG = 0, 2, 8, 20
COV_INCREMENT, OBJECT_IDENTIFIER, OBJECT_NAME, OBJECT_TYPE, PRESENT_VALUE = 22, 75, 77, 79, 85
ALL, LOCATION, LOG_BUFFER, PROPERTY_LIST = 8, 58, 131, 371
# PDU types, services, reasons
CONFIRMED, UNCONFIRMED, SIMPLE_ACK, COMPLEX_ACK, ERROR, REJECT, ABORT = 0, 1, 2, 3, 5, 6, 7
READ_PROPERTY, WRITE_PROPERTY, READ_RANGE, ATOMIC_READ_FILE = 12, 15, 26, 6
SUBSCRIBE_COV, READ_PROPERTY_MULTIPLE, DEVICE_COMMUNICATION_CONTROL, REINITIALIZE_DEVICE = 5, 14, 17, 20
REJECT_INVALID_PARAMETER_DATA_TYPE, REJECT_INVALID_TAG = 3, 4
REJECT_MISSING_REQUIRED_PARAMETER, REJECT_UNRECOGNIZED_SERVICE = 5, 9
ABORT_SEGMENTATION_NOT_SUPPORTED = 4
ERROR_CLASS_PROPERTY, INVALID_DATA_TYPE, VALUE_OUT_OF_RANGE = 2, 9, 37
ERROR_CLASS = {0: "device", 2: "property", 3: "resources", 4: "security", 5: "services"}
ERROR_CODE = {3: "device-busy", 19: "no-space-to-add-list-element", 26: "password-failure",
              29: "service-request-denied", 40: "write-access-denied"}


def object_id(kind: int, instance: int) -> bytes:
    return struct.pack(">I", kind << 22 | instance)


def context(number: int, content: bytes) -> bytes:
    """A context-tagged primitive value (Clause 20.2.1); up to 253 octets."""
    if len(content) <= 4:
        return bytes([number << 4 | 0x08 | len(content)]) + content
    assert len(content) <= 253
    return bytes([number << 4 | 0x08 | 5, len(content)]) + content


def char_string(text: str) -> bytes:
    """The content of a CharacterString, ANSI X3.4 (context-tag it, or ``application_string``)."""
    return b"\x00" + text.encode()


def application_string(text: str) -> bytes:
    content = char_string(text)
    assert len(content) <= 253
    return bytes([0x75, len(content)]) + content            # application tag 7, extended length


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


def read_property_multiple_all(invoke_id: int, kind: int, instance: int) -> bytes:
    """ReadPropertyMultiple of every property of one object (property identifier ALL)."""
    return request(invoke_id, READ_PROPERTY_MULTIPLE, context(0, object_id(kind, instance)) + b"\x1e"
                   + context(0, unsigned(ALL)) + b"\x1f")


def subscribe_cov(invoke_id: int, process: int, kind: int, instance: int, lifetime: int = 0) -> bytes:
    """SubscribeCOV with unconfirmed notifications; lifetime 0 asks for an indefinite one."""
    return request(invoke_id, SUBSCRIBE_COV, context(0, unsigned(process)) + context(1, object_id(kind, instance))
                   + context(2, b"\x00") + context(3, unsigned(lifetime)))


def communication_control(invoke_id: int, enable: bool, password: str) -> bytes:
    return request(invoke_id, DEVICE_COMMUNICATION_CONTROL,
                   context(1, unsigned(0 if enable else 1)) + context(2, char_string(password)))


def reinitialize_device(invoke_id: int, password: str | None) -> bytes:
    """A warm start, with or without the password parameter."""
    return request(invoke_id, REINITIALIZE_DEVICE,
                   context(0, unsigned(1)) + (b"" if password is None else context(1, char_string(password))))


def apdu_of(frame: bytes) -> bytes:
    """The APDU of a BACnet/IP frame (Clause 6.2: the NPCI's optional destination and source skipped)."""
    assert frame[:2] == b"\x81\x0a" and frame[4] == 0x01, frame.hex()   # BVLC unicast, NPDU version 1
    control, at = frame[5], 6
    if control & 0x20:                                        # destination network, address (hop count below)
        at += 3 + frame[at + 2]
    if control & 0x08:                                        # source network and address
        at += 3 + frame[at + 2]
    return frame[at + (1 if control & 0x20 else 0):]


def outcome(frame: bytes) -> tuple[int, str]:
    """(invoke id, "ack" / "CLASS/CODE" of an Error / "reject" / "abort" / "unconfirmed") of a frame received."""
    apdu = apdu_of(frame)
    kind = apdu[0] >> 4
    if kind == UNCONFIRMED:                                   # a notification, not a reply
        return -1, "unconfirmed"
    if kind in (SIMPLE_ACK, COMPLEX_ACK):
        return apdu[1], "ack"
    if kind == ERROR:
        cls, code = error_of(apdu)
        return apdu[1], f"{ERROR_CLASS.get(cls, cls)}/{ERROR_CODE.get(code, code)}"
    return apdu[1], {REJECT: "reject", ABORT: "abort"}.get(kind, f"pdu type {kind}")


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
        return apdu_of(data)

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
