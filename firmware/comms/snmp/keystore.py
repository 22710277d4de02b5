"""The SNMP engine's identity and this meter's SNMP secrets, kept in ``data_dir/snmp``.

``engine.json``: the snmpEngineID (RFC 3411: 0x80, the enterprise number, format 5 and 8 random bytes, made at
the first start and kept) and snmpEngineBoots, incremented and written (synced) at each start before the agent
answers, so a message authenticated in an earlier run is never in time again.

``secrets.json`` (owner only, 0600, like the configuration seal key): the v2c community and each v3 user's
authentication and privacy passphrases. A secret the configuration does not set is drawn at random the first
time it is needed and kept, so no two meters share one and none is a factory default; ``meter snmp secrets``
shows them on the meter, ``meter snmp set`` replaces one.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from firmware.comms.snmp.usm import MAX_BOOTS, MIN_PASSPHRASE
from firmware.storage.atomic import atomic_write
from hal.errors import ConfigError

SUBDIR = "snmp"
ENGINE_FILE = "engine.json"
SECRETS_FILE = "secrets.json"
ENGINE_ID_FORMAT_OCTETS = 5
SECRET_KINDS = ("auth", "priv")


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"SNMP store {path}: cannot be read ({exc}); restore it or remove it to start anew") \
            from None
    if not isinstance(document, dict):
        raise ConfigError(f"SNMP store {path}: not a JSON object")
    return document


def _write(path: Path, document: dict[str, Any], mode: int) -> None:
    atomic_write(path, (json.dumps(document, indent=1, sort_keys=True) + "\n").encode(), mode=mode)


def new_engine_id(enterprise_number: int) -> bytes:
    return (0x80000000 | (enterprise_number & 0x7FFFFFFF)).to_bytes(4, "big") + bytes((ENGINE_ID_FORMAT_OCTETS,)) + \
        os.urandom(8)


def start_engine(data_dir: str | Path, enterprise_number: int) -> tuple[bytes, int]:
    """(engine ID, boots of this start): the ID made once, the boots count one more than at the last start."""
    path = Path(data_dir) / SUBDIR / ENGINE_FILE
    state = _read(path)
    try:
        engine_id = bytes.fromhex(state["engine_id"])
        boots = int(state["boots"]) + 1
    except (KeyError, ValueError, TypeError):
        engine_id, boots = new_engine_id(enterprise_number), 1
    if not 5 <= len(engine_id) <= 32:
        raise ConfigError(f"SNMP store {path}: the engine ID is not 5..32 bytes")
    # RFC 3414 2.2.2: at the largest value the engine must be reconfigured; a new ID starts a new count
    if boots >= MAX_BOOTS:
        engine_id, boots = new_engine_id(enterprise_number), 1
    _write(path, {"engine_id": engine_id.hex(), "boots": boots}, 0o644)
    return engine_id, boots


class SecretStore:
    def __init__(self, data_dir: str | Path) -> None:
        self.path = Path(data_dir) / SUBDIR / SECRETS_FILE

    def load(self) -> dict[str, Any]:
        document = _read(self.path)
        document.setdefault("users", {})
        return document

    def community(self, configured: str = "") -> str:
        if configured:
            return configured
        document = self.load()
        if not document.get("community"):
            document["community"] = secrets.token_urlsafe(15)
            _write(self.path, document, 0o600)
        return str(document["community"])

    def user(self, name: str) -> tuple[str, str]:
        """(authentication passphrase, privacy passphrase) of a v3 user, drawn now if the meter has none yet."""
        document = self.load()
        entry = document["users"].setdefault(name, {})
        if not all(entry.get(k) for k in SECRET_KINDS):
            for kind in SECRET_KINDS:
                entry[kind] = entry.get(kind) or secrets.token_urlsafe(18)
            _write(self.path, document, 0o600)
        return str(entry["auth"]), str(entry["priv"])

    def set(self, what: str, value: str) -> None:
        """``community``, or ``USER.auth`` / ``USER.priv``."""
        document = self.load()
        if what == "community":
            if not value:
                raise ConfigError("the community is not empty")
            document["community"] = value
        else:
            name, _, kind = what.rpartition(".")
            if not name or kind not in SECRET_KINDS:
                raise ConfigError(f"{what!r}: write community, USER.auth or USER.priv")
            if len(value) < MIN_PASSPHRASE:
                raise ConfigError(f"an SNMPv3 passphrase has at least {MIN_PASSPHRASE} characters")
            entry = document["users"].setdefault(name, {})
            entry[kind] = value
            for other in SECRET_KINDS:
                entry[other] = entry.get(other) or secrets.token_urlsafe(18)
        _write(self.path, document, 0o600)
