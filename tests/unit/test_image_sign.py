"""Signing and verification: stock openssl agrees, every altered or truncated byte is refused."""
from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from firmware.upgrade.errors import UpgradeRefused
from firmware.upgrade.image import Image, key_id
from firmware.upgrade.trust import TrustStore, load_public_key, public_raw, verify_signatures
from tests.unit.test_image_build import EPOCH, make_tree
from tools.image.build import build_image
from tools.image.keys import keygen, load_private_key, sign_image

OPENSSL = shutil.which("openssl")


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sign")
    build_image(make_tree(tmp / "tree"), tmp / "x.img", epoch=EPOCH)
    private, public, kid = keygen(tmp / "vendor")
    sign_image(tmp / "x.img", load_private_key(private))
    return tmp, tmp / "x.img", public, kid


def check(image_path: Path, pubkeys: list[Path]) -> str:
    """What the meter does before touching anything: structure, every file hash, signature."""
    image = Image.open(image_path)
    image.scan()
    keys = {key_id(public_raw(k)): k for k in (load_public_key(p.read_bytes()) for p in pubkeys)}
    return verify_signatures(image.manifest.raw, image.signatures, keys)


def test_signed_image_verifies(signed):
    tmp, img, pub, kid = signed
    assert check(img, [pub]) == kid
    assert list(Image.open(img).signatures) == [kid]


DOC = Path(__file__).resolve().parents[2] / "docs" / "upgrade.md"


def documented_openssl_check() -> str:
    """The shell lines of docs/upgrade.md, "Checking a signature by hand", exactly as printed there."""
    text = DOC.read_text()
    block = text[text.index("<!-- openssl-check -->"):text.index("<!-- /openssl-check -->")]
    return block.split("```sh\n", 1)[1].split("```", 1)[0]


@pytest.mark.skipif(OPENSSL is None or shutil.which("tar") is None, reason="openssl or tar is not installed")
def test_documented_openssl_command_checks_the_signature(signed, tmp_path):
    _, img, pub, kid = signed
    shutil.copy(img, tmp_path / "openmeter-1.4.0.img")
    shutil.copy(pub, tmp_path / "vendor-2026.pub")
    script = documented_openssl_check()
    assert "openssl pkeyutl -verify -pubin" in script and "-rawin" in script
    ok = subprocess.run(["sh", "-ec", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout, ok.stderr
    assert (tmp_path / "signatures" / f"{kid}.sig").exists()
    # The same command on an altered manifest fails. The image is altered after signing by rewriting it
    # with a valid tar tool: only the signature can tell.
    data = bytearray(img.read_bytes())
    at = data.index(b'"python": "3.11"') + len('"python": "3.1')
    data[at] = ord("2")
    (tmp_path / "openmeter-1.4.0.img").write_bytes(bytes(data))
    for p in (tmp_path / "manifest.json", tmp_path / "signatures" / f"{kid}.sig"):
        p.unlink()
    bad = subprocess.run(["sh", "-ec", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "Signature Verification Failure" in bad.stdout


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_openssl_signature_is_accepted_by_the_meter(signed, tmp_path):
    # The other direction: a manifest signed by openssl (an offline signer) verifies on the meter.
    _, img, _, _ = signed
    subprocess.run([OPENSSL, "genpkey", "-algorithm", "ed25519", "-out", "k.pem"], cwd=tmp_path, check=True)
    subprocess.run([OPENSSL, "pkey", "-in", "k.pem", "-pubout", "-out", "k.pub"], cwd=tmp_path, check=True)
    subprocess.run(["tar", "-xf", str(img), "manifest.json"], cwd=tmp_path, check=True)
    subprocess.run([OPENSSL, "pkeyutl", "-sign", "-inkey", "k.pem", "-rawin", "-in", "manifest.json",
                    "-out", "m.sig"], cwd=tmp_path, check=True)
    key = load_public_key((tmp_path / "k.pub").read_bytes())
    image = Image.open(img)
    sigs = {key_id(public_raw(key)): (tmp_path / "m.sig").read_bytes()}
    assert verify_signatures(image.manifest.raw, sigs, {key_id(public_raw(key)): key})


def positions(img: Path) -> list[int]:
    """Every byte of the manifest and signature headers and of the signatures, the first 512 bytes of
    the end-of-archive record; every 5th byte of the other headers, every 13th of the rest (every byte
    takes four times as long and finds no other kind of case)."""
    size = img.stat().st_size
    chosen = set(range(0, size, 13)) | set(range(size - tarfile.RECORDSIZE, size - tarfile.RECORDSIZE + 512))
    with tarfile.open(img) as tar:
        for m in tar.getmembers():
            payload = m.name.startswith("payload/")
            chosen |= set(range(m.offset, m.offset_data, 5 if payload else 1))
            if m.name.startswith("signatures/"):
                chosen |= set(range(m.offset_data, m.offset_data + m.size))
    return sorted(chosen)


def test_flipped_bytes_anywhere_are_refused(signed):
    tmp, img, pub, _ = signed
    original = img.read_bytes()
    bad = tmp / "flipped.img"
    reasons: dict[str, int] = {}
    for pos in positions(img):
        data = bytearray(original)
        data[pos] ^= 0xFF
        bad.write_bytes(bytes(data))
        with pytest.raises(UpgradeRefused) as err:
            check(bad, [pub])
        reasons[err.value.reason] = reasons.get(err.value.reason, 0) + 1
    # Payload/header/padding flips are "damaged"; manifest flips fail the signature (or JSON).
    assert set(reasons) <= {"damaged", "signature", "format", "truncated", "untrusted"}
    assert reasons["damaged"] > 0 and reasons["signature"] > 0


def test_truncations_anywhere_are_refused(signed):
    tmp, img, pub, _ = signed
    original = img.read_bytes()
    short = tmp / "short.img"
    for length in sorted(set(range(0, len(original), 23)) | set(range(len(original) - 600, len(original)))):
        short.write_bytes(original[:length])
        with pytest.raises(UpgradeRefused) as err:
            check(short, [pub])
        assert err.value.reason in ("truncated", "format"), (length, err.value)
        if length > 2048:
            assert err.value.reason == "truncated"
            assert "truncated" in str(err.value)


def test_appended_bytes_are_refused(signed):
    tmp, img, pub, _ = signed
    longer = tmp / "long.img"
    longer.write_bytes(img.read_bytes() + bytes(512))
    with pytest.raises(UpgradeRefused, match="follow the end of the archive"):
        check(longer, [pub])


def test_wrong_key_is_refused_naming_the_keys(signed, tmp_path):
    _, img, _, kid = signed
    _, other_pub, other_kid = keygen(tmp_path / "other")
    with pytest.raises(UpgradeRefused) as err:
        check(img, [other_pub])
    assert err.value.reason == "untrusted"
    assert kid in str(err.value) and other_kid in str(err.value)


def test_unsigned_image_is_refused(tmp_path):
    build_image(make_tree(tmp_path / "tree"), tmp_path / "u.img", epoch=EPOCH)
    _, pub, _ = keygen(tmp_path / "k")
    with pytest.raises(UpgradeRefused) as err:
        check(tmp_path / "u.img", [pub])
    assert err.value.reason == "unsigned"


def test_two_signatures_for_key_rotation(signed, tmp_path):
    _, img, old_pub, old_kid = signed
    both = tmp_path / "both.img"
    new_private, new_pub, new_kid = keygen(tmp_path / "new", passphrase=b"correct horse")
    sign_image(img, load_private_key(new_private, b"correct horse"), both)
    assert sorted(Image.open(both).signatures) == sorted([old_kid, new_kid])
    assert check(both, [old_pub]) == old_kid                      # meters that know only the old key
    assert check(both, [new_pub]) == new_kid                      # meters that know only the new key
    # Re-signing with the same key replaces its signature instead of adding a second one.
    sign_image(both, load_private_key(new_private, b"correct horse"))
    assert len(Image.open(both).signatures) == 2
    with pytest.raises(Exception, match="passphrase|encrypted|password"):
        load_private_key(new_private, None)


def test_revoked_key_no_longer_verifies(signed, tmp_path):
    _, img, pub, kid = signed
    store = TrustStore(tmp_path / "trust")
    assert store.add(pub.read_bytes(), "vendor 2024") == kid
    image = Image.open(img)
    assert store.verify(image.manifest.raw, image.signatures) == kid
    _, pub2, kid2 = keygen(tmp_path / "successor")
    store.add(pub2.read_bytes(), "vendor 2025")
    store.revoke(kid)
    with pytest.raises(UpgradeRefused) as err:
        store.verify(image.manifest.raw, image.signatures)
    assert err.value.reason == "untrusted" and "revoked" in str(err.value)
    with pytest.raises(UpgradeRefused, match="cannot be trusted again"):
        store.add(pub.read_bytes())
