"""SNMP messages (RFC 3416 PDUs, RFC 1901 community messages, RFC 3412 v3 messages) to and from bytes.

A decoded request keeps each variable binding's value as its raw TLV (a manager's Get carries NULLs, and the
agent writes nothing); an encoded answer takes values already encoded (``firmware.comms.snmp.mib`` keeps them).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from firmware.comms.snmp import ber
from firmware.comms.snmp.ber import BerError, Oid, Reader

GET, GET_NEXT, RESPONSE, SET, TRAP_V1, GET_BULK, INFORM, TRAP, REPORT = range(0xA0, 0xA9)
REQUESTS = (GET, GET_NEXT, SET, GET_BULK, INFORM)
V1, V2C, V3 = 0, 1, 3
MAX_VARBINDS = 128                 # in one request; more is a message the agent does not serve

# error-status values (RFC 3416)
NO_ERROR, TOO_BIG, GEN_ERR, NO_ACCESS, NOT_WRITABLE = 0, 1, 5, 6, 17

# msgFlags (RFC 3412)
FLAG_AUTH, FLAG_PRIV, FLAG_REPORTABLE = 1, 2, 4
USM_MODEL = 3


@dataclass
class Pdu:
    tag: int
    request_id: int
    error_status: int = 0          # non-repeaters of a GetBulk
    error_index: int = 0           # max-repetitions of a GetBulk
    varbinds: list[tuple[Oid, bytes]] = field(default_factory=list)   # (name, encoded value TLV)


def decode_pdu(reader: Reader) -> Pdu:
    tag, start, stop = reader.header()
    if not GET <= tag <= REPORT or tag == TRAP_V1:
        raise BerError(f"PDU type 0x{tag:02x} is not an SNMPv2 PDU")
    body = Reader(reader.data, start, stop, reader.depth + 1)
    request_id = body.integer()
    status = body.integer()
    index = body.integer()
    binds = body.enter()
    varbinds: list[tuple[Oid, bytes]] = []
    while not binds.done():
        if len(varbinds) >= MAX_VARBINDS:
            raise BerError("too many variable bindings")
        bind = binds.enter()
        name = bind.oid()
        vpos = bind.pos
        bind.header()
        if not bind.done():
            raise BerError("variable binding with more than a name and a value")
        varbinds.append((name, reader.data[vpos:bind.pos]))
    if not body.done():
        raise BerError("PDU with trailing bytes")
    if not -(1 << 31) <= request_id < (1 << 31):
        raise BerError("request-id out of range")
    return Pdu(tag, request_id, status, index, varbinds)


def encode_varbinds(varbinds: list[tuple[Oid, bytes]]) -> bytes:
    return ber.sequence(*(ber.sequence(ber.encode_oid(name), value) for name, value in varbinds))


def encode_pdu(pdu: Pdu, encoded_varbinds: bytes | None = None) -> bytes:
    binds = encode_varbinds(pdu.varbinds) if encoded_varbinds is None else encoded_varbinds
    return ber.sequence(ber.encode_int(pdu.request_id), ber.encode_int(pdu.error_status),
                        ber.encode_int(pdu.error_index), binds, tag=pdu.tag)


# --------------------------------------------------------------------------- community messages (v1, v2c)


@dataclass
class CommunityMessage:
    version: int
    community: bytes
    pdu: Pdu


def peek_version(data: bytes) -> tuple[Reader, int]:
    outer = Reader(data)
    message = outer.enter()
    if not outer.done():
        raise BerError("bytes after the message")
    return message, message.integer()


def decode_community(message: Reader, version: int) -> CommunityMessage:
    community = message.octets()
    pdu = decode_pdu(message)
    if not message.done():
        raise BerError("message with trailing bytes")
    return CommunityMessage(version, community, pdu)


def encode_community(version: int, community: bytes, pdu: Pdu) -> bytes:
    return ber.sequence(ber.encode_int(version), ber.encode_octets(community), encode_pdu(pdu))


# --------------------------------------------------------------------------- v3 messages (RFC 3412, USM RFC 3414)


@dataclass
class UsmParameters:
    engine_id: bytes
    boots: int
    time: int
    user: bytes
    auth: bytes
    priv: bytes

    def encode(self) -> bytes:
        return ber.sequence(ber.encode_octets(self.engine_id), ber.encode_int(self.boots),
                            ber.encode_int(self.time), ber.encode_octets(self.user), ber.encode_octets(self.auth),
                            ber.encode_octets(self.priv))


@dataclass
class V3Message:
    msg_id: int
    max_size: int
    flags: int
    usm: UsmParameters
    data_tag: int                  # SEQUENCE (plaintext scoped PDU) or OCTET STRING (encrypted)
    data: bytes                    # the scoped PDU's TLV, or the encrypted octets
    auth_offset: int = -1          # where msgAuthenticationParameters' value sits in the whole message


def decode_v3(message: Reader) -> V3Message:
    header = message.enter()
    msg_id = header.integer()
    max_size = header.integer()
    flags_raw = header.octets()
    model = header.integer()
    if not header.done() or len(flags_raw) != 1 or model != USM_MODEL:
        raise BerError("msgGlobalData is not a USM header")
    if not 0 <= msg_id < (1 << 31) or not 484 <= max_size < (1 << 31):
        raise BerError("msgID or msgMaxSize out of range")
    params_start, params_stop = message.expect(ber.OCTET_STRING)
    params = Reader(message.data, params_start, params_stop, message.depth + 1).enter()
    engine_id = params.octets()
    boots = params.integer()
    engine_time = params.integer()
    user = params.octets()
    auth_start, auth_stop = params.expect(ber.OCTET_STRING)
    priv = params.octets()
    if not params.done() or len(engine_id) > 32 or len(user) > 32:
        raise BerError("msgSecurityParameters is not a USM block")
    data_pos = message.pos
    tag, start, stop = message.header()
    if tag not in (ber.SEQUENCE, ber.OCTET_STRING) or not message.done():
        raise BerError("msgData is neither a scoped PDU nor encrypted octets")
    data = message.data[data_pos:stop] if tag == ber.SEQUENCE else message.data[start:stop]
    usm = UsmParameters(engine_id, boots, engine_time, user, message.data[auth_start:auth_stop], priv)
    return V3Message(msg_id, max_size, flags_raw[0], usm, tag, data, auth_start)


def decode_scoped(data: bytes) -> tuple[bytes, bytes, Pdu]:
    outer = Reader(data)
    scoped = outer.enter()
    engine_id = scoped.octets()
    context = scoped.octets()
    pdu = decode_pdu(scoped)
    if not scoped.done():
        raise BerError("scoped PDU with trailing bytes")
    return engine_id, context, pdu


def encode_scoped(engine_id: bytes, context: bytes, pdu: Pdu) -> bytes:
    return ber.sequence(ber.encode_octets(engine_id), ber.encode_octets(context), encode_pdu(pdu))


def encode_v3(msg_id: int, max_size: int, flags: int, usm: UsmParameters, data: bytes,
              encrypted: bool) -> tuple[bytes, int]:
    """(the whole message, where msgAuthenticationParameters' value starts in it); ``data`` is the scoped PDU's
    TLV, or the encrypted octets when ``encrypted``."""
    head = (ber.encode_octets(usm.engine_id) + ber.encode_int(usm.boots) + ber.encode_int(usm.time)
            + ber.encode_octets(usm.user))
    params = ber.sequence(head, ber.encode_octets(usm.auth), ber.encode_octets(usm.priv))
    auth_in_params = len(params) - len(head) - len(usm.auth) - len(usm.priv) - 4 + len(head) + 2
    version = ber.encode_int(3)
    header = ber.sequence(ber.encode_int(msg_id), ber.encode_int(max_size), ber.encode_octets(bytes((flags,))),
                          ber.encode_int(USM_MODEL))
    wrapped = ber.encode_octets(params)
    body = version + header + wrapped + (ber.encode_octets(data) if encrypted else data)
    message = ber.tlv(ber.SEQUENCE, body)
    offset = (len(message) - len(body)) + len(version) + len(header) + (len(wrapped) - len(params)) + auth_in_params
    return message, offset
