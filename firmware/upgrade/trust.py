"""The meter's trust store: the public keys whose Ed25519 signatures on a manifest are accepted.

Held as one JSON file (``trust.json``), replaced atomically. Each key is ``trusted`` or ``revoked``;
a revoked key stays listed so that no later image can bring it back. Keys change in two ways:

- by hand on the meter (``meter image trust add|revoke``), e.g. at manufacturing;
- by rotation: a manifest's ``trust`` field ({"add": [{"pem", "comment"}], "revoke": [keyid]}) is
  applied when that image is committed (reported healthy), so a failed upgrade changes no keys.

The store never holds a private key; signing happens off the meter (``meter-image sign``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware.storage.atomic import atomic_write
from firmware.upgrade.errors import UpgradeRefused
from firmware.upgrade.image import key_id
from hal.errors import ConfigError, StorageError

TRUST_FILE = "trust.json"


def load_public_key(pem: bytes | str) -> Ed25519PublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ConfigError(f"not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"public key is {type(key).__name__}, not Ed25519")
    return key


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def verify_signatures(manifest_raw: bytes, signatures: dict[str, bytes],
                      keys: dict[str, Ed25519PublicKey], revoked: frozenset[str] = frozenset()) -> str:
    """Return the id of a trusted key whose signature over ``manifest_raw`` is valid, or refuse.

    Signatures by unknown or revoked keys are ignored (an image signed with both the old and the
    new key during a rotation installs on meters that know either), but a signature that claims a
    trusted key and does not verify is refused outright: the manifest or the signature was altered.
    """
    if not signatures:
        raise UpgradeRefused("unsigned", "the image is not signed; sign it with `meter-image sign --key KEY`")
    known = [kid for kid in sorted(signatures) if kid in keys]
    for kid in known:
        try:
            keys[kid].verify(signatures[kid], manifest_raw)
        except InvalidSignature:
            raise UpgradeRefused("signature", f"the signature by trusted key {kid} does not match the manifest; "
                                 "the image was altered after signing") from None
    if known:
        return known[0]
    listed = ", ".join(sorted(signatures))
    why = " (revoked)" if set(signatures) & revoked else ""
    raise UpgradeRefused("untrusted", f"the image is signed by key(s) {listed}{why}, none of which this meter "
                         f"trusts (trusted: {', '.join(sorted(keys)) or 'none'})")


class TrustStore:
    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / TRUST_FILE

    def _load(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {"keys": {}}
        except (OSError, ValueError) as exc:
            raise StorageError(f"trust store {self.path} cannot be read ({exc}); restore it from the "
                               "manufacturing record") from None
        return doc if isinstance(doc.get("keys"), dict) else {"keys": {}}

    def _save(self, doc: dict[str, Any]) -> None:
        atomic_write(self.path, (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode())

    def entries(self) -> dict[str, dict[str, Any]]:
        return dict(self._load()["keys"])

    def trusted(self) -> dict[str, Ed25519PublicKey]:
        return {kid: load_public_key(e["pem"]) for kid, e in self.entries().items() if e.get("state") == "trusted"}

    def revoked(self) -> frozenset[str]:
        return frozenset(kid for kid, e in self.entries().items() if e.get("state") == "revoked")

    def verify(self, manifest_raw: bytes, signatures: dict[str, bytes]) -> str:
        return verify_signatures(manifest_raw, signatures, self.trusted(), self.revoked())

    def add(self, pem: bytes | str, comment: str = "") -> str:
        key = load_public_key(pem)
        kid = key_id(public_raw(key))
        doc = self._load()
        entry = doc["keys"].get(kid)
        if entry and entry.get("state") == "revoked":
            raise UpgradeRefused("untrusted", f"key {kid} was revoked on {entry.get('revoked_at')}; "
                                 "a revoked key cannot be trusted again")
        if not entry:
            doc["keys"][kid] = {"pem": public_pem(key), "comment": comment, "state": "trusted",
                                "added_at": _now()}
            self._save(doc)
        return kid

    def revoke(self, kid: str) -> None:
        doc = self._load()
        entry = doc["keys"].get(kid)
        if entry is None:
            raise ConfigError(f"key {kid} is not in the trust store {self.path}")
        if entry.get("state") == "revoked":
            return
        if [k for k, e in doc["keys"].items() if e.get("state") == "trusted"] == [kid]:
            raise ConfigError(f"key {kid} is the last trusted key; add its successor first, or no image "
                              "could ever be installed again")
        entry.update(state="revoked", revoked_at=_now())
        self._save(doc)

    def check_update(self, update: dict[str, Any]) -> None:
        """Refuse a rotation that would re-trust a revoked key or leave no trusted key at all."""
        entries = self.entries()
        adds = set()
        for item in update.get("add", []):
            kid = key_id(public_raw(load_public_key(item["pem"])))
            if entries.get(kid, {}).get("state") == "revoked":
                raise UpgradeRefused("untrusted", f"the image would re-trust key {kid}, which this meter revoked")
            adds.add(kid)
        remaining = {k for k, e in entries.items() if e.get("state") == "trusted"} | adds
        if not remaining - set(update.get("revoke", [])):
            raise UpgradeRefused("untrusted", "the image would revoke every trusted key; no later image "
                                 "could be installed")

    def apply(self, update: dict[str, Any]) -> list[str]:
        """Apply a manifest's rotation (idempotent: applying twice changes nothing more)."""
        changes = []
        for item in update.get("add", []):
            kid = self.add(item["pem"], str(item.get("comment", "")))
            changes.append(f"added {kid}")
        for kid in update.get("revoke", []):
            if kid in self.entries():
                self.revoke(kid)
                changes.append(f"revoked {kid}")
        return changes


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
