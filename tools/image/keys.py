"""Signing keys and signatures, on the build or signing machine (never on the meter).

``keygen`` writes an Ed25519 private key (PKCS#8 PEM, mode 0600, encrypted when a passphrase is
given) and its public key (SubjectPublicKeyInfo PEM, what the meter's trust store and
``openssl pkeyutl -verify -pubin`` read). ``sign`` adds a signature over the manifest bytes to an
image; the payload is not re-read for the signature because the manifest already pins every
file's SHA-256.
"""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.storage.atomic import atomic_write
from firmware.upgrade.image import Image, key_id, write_signed
from firmware.upgrade.trust import public_raw
from hal.errors import ConfigError

PASSPHRASE_ENV = "METER_SIGNING_PASSPHRASE"


def keygen(prefix: str | Path, passphrase: bytes | None = None) -> tuple[Path, Path, str]:
    """Write ``PREFIX.key`` and ``PREFIX.pub``; refuse to overwrite an existing private key."""
    prefix = Path(prefix)
    private_path, public_path = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    if private_path.exists():
        raise ConfigError(f"{private_path} exists; a signing key is never overwritten (choose another name)")
    key = Ed25519PrivateKey.generate()
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    atomic_write(private_path, private_pem, mode=0o600)
    atomic_write(public_path, public_pem)
    return private_path, public_path, key_id(public_raw(key.public_key()))


def load_private_key(path: str | Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    if passphrase is None and os.environ.get(PASSPHRASE_ENV):
        passphrase = os.environ[PASSPHRASE_ENV].encode()
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), passphrase)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: cannot load the private key ({exc}); if it is encrypted, set "
                          f"{PASSPHRASE_ENV}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: {type(key).__name__} is not an Ed25519 key")
    return key


def sign_image(image_path: str | Path, key: Ed25519PrivateKey, out: str | Path | None = None) -> str:
    """Add (or replace) this key's signature; other keys' signatures are kept. Returns the key id."""
    image = Image.open(image_path)
    image.scan()    # never sign an image whose payload does not match its manifest
    kid = key_id(public_raw(key.public_key()))
    signatures = dict(image.signatures)
    signatures[kid] = key.sign(image.manifest.raw)
    target = Path(out or image_path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        write_signed(image, f, signatures)
    os.replace(tmp, target)
    return kid
