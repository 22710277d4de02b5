"""Security suite 0 (IEC 62056-5-3 §5.3.4): AES-GCM-128 with a 12-byte tag, HLS-GMAC authentication, and the
general-glo-ciphering and glo-initiate APDUs.

A failed tag, a short APDU or a system title of the wrong length is ``SecurityError``; the session answers it
by ending the association, never by telling the client which check failed.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from firmware.comms.dlms.axdr import DecodeError, Reader, length

TAG_LEN = 12
SC_AUTH = 0x10
SC_ENC = 0x20
SC_AUTH_ENC = SC_AUTH | SC_ENC
GENERAL_GLO = 0xDB
GLO_INITIATE_REQUEST = 0x21
GLO_INITIATE_RESPONSE = 0x28


class SecurityError(Exception):
    """An APDU or a challenge reply that does not pass the security checks."""


@dataclass(frozen=True)
class Protected:
    system_title: bytes
    sc: int
    ic: int
    plain: bytes


def _iv(system_title: bytes, ic: int) -> bytes:
    if len(system_title) != 8:
        raise SecurityError("system title is 8 bytes")
    return system_title + ic.to_bytes(4, "big")


def seal(sc: int, system_title: bytes, ic: int, ek: bytes, ak: bytes, plain: bytes) -> bytes:
    """Ciphertext and tag (authenticated encryption) of ``plain``."""
    enc = Cipher(algorithms.AES(ek), modes.GCM(_iv(system_title, ic), min_tag_length=TAG_LEN)).encryptor()
    enc.authenticate_additional_data(bytes([sc]) + ak)
    body = enc.update(plain) + enc.finalize()
    return body + enc.tag[:TAG_LEN]


def open_sealed(sc: int, system_title: bytes, ic: int, ek: bytes, ak: bytes, sealed: bytes) -> bytes:
    if sc & 0x0F != 0 or sc & SC_AUTH_ENC != SC_AUTH_ENC or len(sealed) < TAG_LEN:
        raise SecurityError("only authenticated encryption of security suite 0 is accepted")
    dec = Cipher(algorithms.AES(ek), modes.GCM(_iv(system_title, ic), sealed[-TAG_LEN:],
                                               min_tag_length=TAG_LEN)).decryptor()
    dec.authenticate_additional_data(bytes([sc]) + ak)
    try:
        return dec.update(sealed[:-TAG_LEN]) + dec.finalize()
    except InvalidTag:
        raise SecurityError("tag does not verify") from None


def gmac(system_title: bytes, ic: int, ek: bytes, ak: bytes, challenge: bytes) -> bytes:
    enc = Cipher(algorithms.AES(ek), modes.GCM(_iv(system_title, ic), min_tag_length=TAG_LEN)).encryptor()
    enc.authenticate_additional_data(bytes([SC_AUTH]) + ak + challenge)
    enc.finalize()
    return enc.tag[:TAG_LEN]


def hls_reply(system_title: bytes, ic: int, ek: bytes, ak: bytes, challenge: bytes) -> bytes:
    """f(challenge) = SC || IC || GMAC(SC || AK || challenge)."""
    return bytes([SC_AUTH]) + ic.to_bytes(4, "big") + gmac(system_title, ic, ek, ak, challenge)


def hls_check(reply: bytes, system_title: bytes, ek: bytes, ak: bytes, challenge: bytes) -> int:
    """The client's invocation counter of a correct f(StoC); SecurityError otherwise."""
    if len(reply) != 5 + TAG_LEN or reply[0] != SC_AUTH:
        raise SecurityError("HLS reply malformed")
    ic = int.from_bytes(reply[1:5], "big")
    if not hmac.compare_digest(gmac(system_title, ic, ek, ak, challenge), reply[5:]):
        raise SecurityError("HLS reply does not verify")
    return ic


def parse_general_glo(apdu: bytes) -> tuple[bytes, int, int, bytes]:
    """(system title, SC, IC, sealed) of a general-glo-ciphering APDU."""
    try:
        r = Reader(apdu)
        if r.byte() != GENERAL_GLO:
            raise SecurityError("not general-glo-ciphering")
        title = r.take(r.length())
        body = r.take(r.length())
        if not r.done() or len(body) < 5 + TAG_LEN:
            raise SecurityError("general-glo-ciphering malformed")
    except DecodeError:
        raise SecurityError("general-glo-ciphering malformed") from None
    return title, body[0], int.from_bytes(body[1:5], "big"), body[5:]


def general_glo(system_title: bytes, ic: int, ek: bytes, ak: bytes, plain: bytes) -> bytes:
    body = bytes([SC_AUTH_ENC]) + ic.to_bytes(4, "big") + seal(SC_AUTH_ENC, system_title, ic, ek, ak, plain)
    return bytes([GENERAL_GLO]) + length(len(system_title)) + system_title + length(len(body)) + body


def parse_glo_initiate(apdu: bytes) -> tuple[int, int, bytes]:
    """(SC, IC, sealed) of a glo-initiate-request."""
    try:
        r = Reader(apdu)
        if r.byte() != GLO_INITIATE_REQUEST:
            raise SecurityError("not glo-initiate-request")
        body = r.take(r.length())
    except DecodeError:
        raise SecurityError("glo-initiate-request malformed") from None
    if len(body) < 5 + TAG_LEN:
        raise SecurityError("glo-initiate-request malformed")
    return body[0], int.from_bytes(body[1:5], "big"), body[5:]


def glo_initiate_response(system_title: bytes, ic: int, ek: bytes, ak: bytes, plain: bytes) -> bytes:
    body = bytes([SC_AUTH_ENC]) + ic.to_bytes(4, "big") + seal(SC_AUTH_ENC, system_title, ic, ek, ak, plain)
    return bytes([GLO_INITIATE_RESPONSE]) + length(len(body)) + body
