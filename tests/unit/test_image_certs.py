"""The image's certificate store written by the build machine (tools/image/certs.py): Debian's layout
(update-ca-certificates'), its links naming the target's paths, the bundle verifying a chain with openssl
and Python's ssl."""
from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from tools.image.certs import BUNDLE, CERTS_DIR, HOOKS_DIR, CertStoreError, write_store


def openssl(*args: str, cwd: Path) -> str:
    return subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          timeout=60).stdout


def ca(work: Path, name: str) -> Path:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
            "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", cwd=work)
    return work / f"{name}.crt"


def tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A tree with two enabled CAs (one of them listed twice, under two names), a deselected one and a stale
    link of an earlier run; returns (root, the first CA, a leaf it signed)."""
    work = tmp_path / "work"
    work.mkdir()
    root = tmp_path / "root"
    shared = root / "usr/share/ca-certificates/test"
    shared.mkdir(parents=True)
    shutil.copy(ca(work, "Test_Root_CA"), shared / "Test Root (CA).crt")
    shutil.copy(ca(work, "Other_CA"), shared / "Other_CA.crt")
    shutil.copy(ca(work, "Second_CA"), shared / "Second, CA.crt")
    shutil.copy(work / "Second_CA.crt", shared / "Copy_of_Second.crt")
    (root / CERTS_DIR).mkdir(parents=True)
    (root / CERTS_DIR / "Gone_CA.pem").symlink_to("/usr/share/ca-certificates/test/Gone_CA.crt")
    (root / "etc/ca-certificates.conf").write_text("# enabled and not\ntest/Test Root (CA).crt\n!test/Other_CA.crt\n"
                                                   "test/Second, CA.crt\ntest/Copy_of_Second.crt\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=meter.example",
            "-keyout", "leaf.key", "-out", "leaf.csr", cwd=work)
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "Test_Root_CA.crt", "-CAkey", "Test_Root_CA.key",
            "-CAcreateserial", "-days", "7", "-out", "leaf.crt", cwd=work)
    return root, work / "Test_Root_CA.crt", work / "leaf.crt"


def test_store_written_on_the_tree_names_the_targets_paths_and_verifies_a_chain(tmp_path):
    root, root_ca, leaf = tree(tmp_path)
    assert write_store(root) == 3
    certs = root / CERTS_DIR
    # Debian's names: spaces and commas to _, parentheses to =; the deselected CA left out
    pem = certs / "Test_Root_=CA=.pem"
    assert os.readlink(pem) == "/usr/share/ca-certificates/test/Test Root (CA).crt"
    assert os.readlink(certs / "Second__CA.pem") == "/usr/share/ca-certificates/test/Second, CA.crt"
    assert os.readlink(certs / "Copy_of_Second.pem") == "/usr/share/ca-certificates/test/Copy_of_Second.crt"
    # one hash link per certificate (the copy is the same certificate: none of its own)
    first = openssl("x509", "-hash", "-noout", "-in", str(root_ca), cwd=tmp_path).strip()
    second = openssl("x509", "-hash", "-noout", "-in", str(tmp_path / "work/Second_CA.crt"), cwd=tmp_path).strip()
    assert os.readlink(certs / f"{first}.0") == pem.name
    assert os.readlink(certs / f"{second}.0") == "Second__CA.pem"
    assert sorted(p.name for p in certs.iterdir()) == sorted(
        [pem.name, "Second__CA.pem", "Copy_of_Second.pem", f"{first}.0", f"{second}.0", BUNDLE])
    assert not any(str(tmp_path) in os.readlink(p) for p in certs.iterdir() if p.is_symlink())
    bundle = certs / BUNDLE
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(bundle), str(leaf)], capture_output=True,
                              text=True, timeout=60)
    assert verified.returncode == 0 and verified.stdout.strip().endswith("OK"), verified.stdout + verified.stderr
    ctx = ssl.create_default_context(cafile=str(bundle))
    assert ctx.cert_store_stats()["x509_ca"] == 2
    assert sorted(c["subject"][0][0][1] for c in ctx.get_ca_certs()) == ["Second_CA", "Test_Root_CA"]


def test_a_tree_with_update_hooks_is_refused(tmp_path):
    root, _ca, _leaf = tree(tmp_path)
    hooks = root / HOOKS_DIR
    hooks.mkdir(parents=True)
    (hooks / "jks-keystore").write_text("#!/bin/sh\n")
    with pytest.raises(CertStoreError, match="jks-keystore"):
        write_store(root)
    assert not (root / CERTS_DIR / BUNDLE).exists()
