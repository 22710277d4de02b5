"""The key that signs the configuration's seal (``firmware.config.seal``): 32 random bytes of this meter, kept
out of the data directory so that editing ``meter.toml`` and its seal together does not pass.

Where it is: the file ``METER_SEAL_KEY`` names (``meter.service`` sets ``/etc/openmeter/seal.key``, made by
root at the first start, readable by the meter and not writable by it: ``ProtectSystem=strict``), else
``$XDG_STATE_HOME/openmeter/seal.key`` (``~/.local/state``) for a meter run by hand. The key is made the first
time a seal is written; until then a seal written before keys existed is checked as before (unkeyed), and
once the key exists an unkeyed seal no longer passes.

The CM4 has no TPM or secure element. What it offers is a 256-bit device-unique private key in its OTP
(``rpi-otp-private-key``, readable through the VideoCore mailbox by root) and secure boot (a signed boot image
checked against a key hash in OTP). Together they keep the key off the storage medium: without secure boot,
anyone with the board can boot their own system and read the OTP key, and a key file on the eMMC can be read
offline by anyone holding the eMMC (docs/security.md, "Sealed configuration").
"""
from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from firmware.storage.atomic import atomic_write
from hal.errors import ConfigError

ENV = "METER_SEAL_KEY"
KEY_BYTES = 32


def key_path() -> Path:
    named = os.environ.get(ENV)
    if named:
        return Path(named)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "openmeter" / "seal.key"


def load_key(create: bool = False) -> bytes | None:
    """The key; None when there is none yet (and ``create`` is off). A key file that cannot be read or holds
    too few bytes is an error naming it: the meter must not seal with a key it cannot keep."""
    path = key_path()
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        if not create:
            return None
        key = secrets.token_bytes(KEY_BYTES)
        atomic_write(path, key, mode=0o600)
        return key
    except OSError as exc:
        raise ConfigError(f"seal key {path}: cannot be read: {exc}; check its owner and mode (0600 or 0640)") \
            from None
    if len(key) < KEY_BYTES:
        raise ConfigError(f"seal key {path}: holds {len(key)} bytes, at least {KEY_BYTES} are needed; restore it "
                          "from a backup")
    return key


def key_id(key: bytes) -> str:
    """A short name of the key, written in the seal (which key signed it), never the key itself."""
    return hashlib.sha256(b"openmeter seal key id\x00" + key).hexdigest()[:16]
