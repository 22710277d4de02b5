"""The User-based Security Model (RFC 3414) with SHA-2 authentication (RFC 7860) and AES-128 privacy (RFC 3826).

Authentication protocols: usmHMAC192SHA256AuthProtocol, usmHMAC256SHA384AuthProtocol and
usmHMAC384SHA512AuthProtocol (HMAC of the whole message, truncated to 24, 32 or 48 bytes); privacy:
usmAesCfb128Protocol (AES-128 in CFB mode, the IV made of the authoritative engine's boots and time and a
64-bit salt). Keys come from passphrases by the RFC 3414 A.2 algorithm with the protocol's hash (one megabyte
of the passphrase hashed) and are localized to an engine ID: the agent localizes to its own engine ID (it is
authoritative for requests and traps), the inform sender to each receiver's.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from firmware.comms.snmp.ber import Oid, oid
from firmware.config.sections import snmp as section

MIN_PASSPHRASE = 8                 # RFC 3414 11.2: shorter passphrases are refused
TIME_WINDOW_S = 150                # RFC 3414 3.2 step 7
MAX_BOOTS = 2147483647
KU_BYTES = 1048576


@dataclass(frozen=True)
class AuthProtocol:
    name: str                      # the configuration's and net-snmp's name
    oid: Oid
    hash: str                      # hashlib name
    mac_len: int                   # truncated HMAC length


AUTH_PROTOCOLS = {p.name: p for p in (
    AuthProtocol("SHA-256", oid("1.3.6.1.6.3.10.1.1.5"), "sha256", 24),
    AuthProtocol("SHA-384", oid("1.3.6.1.6.3.10.1.1.6"), "sha384", 32),
    AuthProtocol("SHA-512", oid("1.3.6.1.6.3.10.1.1.7"), "sha512", 48),
)}
PRIV_PROTOCOLS = {"AES": oid("1.3.6.1.6.3.10.1.2.4")}      # usmAesCfb128Protocol
assert tuple(AUTH_PROTOCOLS) == section.AUTH_PROTOCOLS and tuple(PRIV_PROTOCOLS) == section.PRIV_PROTOCOLS
AES_KEY = 16


def password_to_key(passphrase: bytes, protocol: AuthProtocol) -> bytes:
    """Ku: the hash of the passphrase repeated to 1,048,576 bytes (RFC 3414 A.2)."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise ValueError(f"an SNMPv3 passphrase has at least {MIN_PASSPHRASE} characters")
    stream = passphrase * (KU_BYTES // len(passphrase) + 1)
    return hashlib.new(protocol.hash, stream[:KU_BYTES]).digest()


def localize(key: bytes, engine_id: bytes, protocol: AuthProtocol) -> bytes:
    """Kul = H(Ku || engineID || Ku)."""
    return hashlib.new(protocol.hash, key + engine_id + key).digest()


@dataclass(frozen=True)
class UserKeys:
    """One user's keys localized to one engine ID."""

    name: bytes
    auth: AuthProtocol
    auth_key: bytes
    priv_key: bytes                # AES-128 key: the first 16 bytes of the localized privacy key

    @classmethod
    def make(cls, name: str, auth: AuthProtocol, auth_pass: str, priv_pass: str, engine_id: bytes) -> "UserKeys":
        return cls(name.encode(), auth, localize(password_to_key(auth_pass.encode(), auth), engine_id, auth),
                   localize(password_to_key(priv_pass.encode(), auth), engine_id, auth)[:AES_KEY])

    def sign(self, message: bytes) -> bytes:
        return hmac.new(self.auth_key, message, self.auth.hash).digest()[:self.auth.mac_len]

    def verify(self, message: bytes, offset: int, given: bytes) -> bool:
        """``message`` with ``given`` at ``offset``: the MAC computed with that field zeroed must equal it."""
        if len(given) != self.auth.mac_len:
            return False
        zeroed = message[:offset] + bytes(len(given)) + message[offset + len(given):]
        return hmac.compare_digest(self.sign(zeroed), given)

    def encrypt(self, plain: bytes, boots: int, engine_time: int) -> tuple[bytes, bytes]:
        """(ciphertext, salt) for msgPrivacyParameters."""
        salt = os.urandom(8)
        return self._cipher(boots, engine_time, salt).encryptor().update(plain), salt

    def decrypt(self, data: bytes, boots: int, engine_time: int, salt: bytes) -> bytes:
        if len(salt) != 8:
            raise ValueError("msgPrivacyParameters is not an 8-byte salt")
        return self._cipher(boots, engine_time, salt).decryptor().update(data)

    def _cipher(self, boots: int, engine_time: int, salt: bytes) -> Cipher[CFB]:
        iv = (boots & 0xFFFFFFFF).to_bytes(4, "big") + (engine_time & 0xFFFFFFFF).to_bytes(4, "big") + salt
        return Cipher(algorithms.AES(self.priv_key), CFB(iv))


def in_time_window(boots: int, engine_time: int, my_boots: int, my_time: int) -> bool:
    return boots == my_boots and my_boots != MAX_BOOTS and abs(engine_time - my_time) <= TIME_WINDOW_S
