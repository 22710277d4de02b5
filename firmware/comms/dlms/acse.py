"""The association requests (IEC 62056-5-3 §7 ACSE): AARQ parsed, AARE and RLRE built, with the xDLMS
InitiateRequest and InitiateResponse they carry. BER as the COSEM profile uses it; anything else is
``DecodeError``."""
from __future__ import annotations

from dataclasses import dataclass

from firmware.comms.dlms.axdr import DecodeError, Reader, length

AARQ, AARE, RLRQ, RLRE = 0x60, 0x61, 0x62, 0x63
CONTEXT_LN, CONTEXT_LN_CIPHERED = 1, 3
MECH_NONE, MECH_LLS, MECH_HLS_GMAC = 0, 1, 5
# acse-service-user diagnostics
DIAG_NONE, DIAG_NO_REASON, DIAG_CONTEXT, DIAG_MECH_NOT_RECOGNISED = 0, 1, 2, 11
DIAG_MECH_REQUIRED, DIAG_AUTH_FAILURE, DIAG_AUTH_REQUIRED = 12, 13, 14
INITIATE_REQUEST, INITIATE_RESPONSE, CONFIRMED_SERVICE_ERROR = 0x01, 0x08, 0x0E
DLMS_VERSION = 6
VAA_LN = 0x0007

# conformance bits (24-bit string, bit 0 first): what this server offers
CONF_BLOCK_GET = 1 << (23 - 11)
CONF_SET = 1 << (23 - 20)
CONF_SELECTIVE = 1 << (23 - 21)
CONF_GET = 1 << (23 - 19)
CONF_ACTION = 1 << (23 - 23)
CONF_MULTIPLE = 1 << (23 - 14)
CONF_GENERAL_PROTECTION = 1 << (23 - 1)
OFFERED = CONF_BLOCK_GET | CONF_SET | CONF_SELECTIVE | CONF_GET | CONF_ACTION | CONF_MULTIPLE


def _oid(kind: int, value: int) -> bytes:
    return b"\x06\x07\x60\x85\x74\x05\x08" + bytes([kind, value])


@dataclass
class Aarq:
    context: int = 0
    calling_title: bytes = b""
    mechanism: int = MECH_NONE
    auth_value: bytes = b""
    user_information: bytes = b""


@dataclass(frozen=True)
class Initiate:
    conformance: int
    max_pdu: int
    dedicated_key: bool


def _context(value: Reader, out: Aarq) -> None:
    oid = value.rest()
    if len(oid) != 9 or oid[:7] != b"\x06\x07\x60\x85\x74\x05\x08" or oid[7] != 1:
        raise DecodeError("application context name")
    out.context = oid[8]


def _tagged(value: Reader, tag: int, what: str) -> bytes:
    if value.byte() != tag:
        raise DecodeError(what)
    return value.take(value.length())


def _title(value: Reader, out: Aarq) -> None:
    out.calling_title = _tagged(value, 0x04, "calling AP title")


def _mechanism(value: Reader, out: Aarq) -> None:
    oid = value.rest()
    if len(oid) != 7 or oid[:6] != b"\x60\x85\x74\x05\x08\x02":
        raise DecodeError("mechanism name")
    out.mechanism = oid[6]


def _auth_value(value: Reader, out: Aarq) -> None:
    out.auth_value = _tagged(value, 0x80, "authentication value")


def _user_information(value: Reader, out: Aarq) -> None:
    out.user_information = _tagged(value, 0x04, "user information")


# AARQ fields read; anything else (protocol version, acse requirements, AE qualifiers, ...) is read past
_FIELDS = {0xA1: _context, 0xA6: _title, 0x8B: _mechanism, 0xAC: _auth_value, 0xBE: _user_information}


def parse_aarq(apdu: bytes) -> Aarq:
    r = Reader(apdu)
    if r.byte() != AARQ:
        raise DecodeError("not an AARQ")
    body = Reader(r.take(r.length()))
    if not r.done():
        raise DecodeError("bytes after the AARQ")
    out = Aarq()
    while not body.done():
        tag = body.byte()
        value = Reader(body.take(body.length()))
        parse = _FIELDS.get(tag)
        if parse is not None:
            parse(value, out)
    return out


def parse_initiate(raw: bytes) -> Initiate:
    r = Reader(raw)
    if r.byte() != INITIATE_REQUEST:
        raise DecodeError("not an InitiateRequest")
    dedicated = r.byte() != 0
    if dedicated:
        r.take(r.length())
    if r.byte():
        r.byte()                                         # response-allowed
    if r.byte():
        r.byte()                                         # proposed-quality-of-service
    if r.byte() != DLMS_VERSION:
        raise DecodeError("DLMS version")
    if r.take(3) != b"\x5f\x1f\x04":
        raise DecodeError("conformance")
    conf = int.from_bytes(r.take(4)[1:], "big")
    max_pdu = int.from_bytes(r.take(2), "big")
    return Initiate(conf, max_pdu, dedicated)


def initiate_response(conformance: int, max_pdu: int) -> bytes:
    return (bytes([INITIATE_RESPONSE, 0x00, DLMS_VERSION]) + b"\x5f\x1f\x04\x00" + conformance.to_bytes(3, "big")
            + max_pdu.to_bytes(2, "big") + VAA_LN.to_bytes(2, "big"))


def initiate_error() -> bytes:
    """ConfirmedServiceError: initiate, service error initiate, other."""
    return bytes([CONFIRMED_SERVICE_ERROR, 0x01, 0x06, 0x00])


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + length(len(value)) + value


def aare(context: int, accepted: bool, diagnostic: int, mechanism: int = MECH_NONE, system_title: bytes = b"",
         challenge: bytes = b"", user_information: bytes = b"") -> bytes:
    parts = [_tlv(0xA1, _oid(1, context)),
             _tlv(0xA2, b"\x02\x01" + bytes([0 if accepted else 1])),
             _tlv(0xA3, _tlv(0xA1, b"\x02\x01" + bytes([diagnostic])))]
    if system_title:
        parts.append(_tlv(0xA4, _tlv(0x04, system_title)))
    if mechanism != MECH_NONE:
        parts.append(b"\x88\x02\x07\x80")
        parts.append(_tlv(0x89, _oid(2, mechanism)[2:]))
        if challenge:
            parts.append(_tlv(0xAA, _tlv(0x80, challenge)))
    if user_information:
        parts.append(_tlv(0xBE, _tlv(0x04, user_information)))
    return _tlv(AARE, b"".join(parts))


def rlre() -> bytes:
    return bytes([RLRE, 0x03, 0x80, 0x01, 0x00])
