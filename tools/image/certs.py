"""The arm64 tree's certificate store, written once by the build machine (``make image``).

ca-certificates runs ``update-ca-certificates`` twice while the tree is made (its postinst, then its
trigger): a shell loop over about 150 certificates and ``openssl rehash``, every program emulated by
qemu-user, about three minutes of a build from nothing. ``make image`` diverts the command to a no-op
while the packages are installed (``tools.image.system.DEFERRED``) and, once they are, writes here what it
writes, from the tree's own ``/etc/ca-certificates.conf`` and certificates, with this machine's openssl:

- ``/etc/ssl/certs/NAME.pem``: a link to each certificate the configuration enables (and each
  ``/usr/local/share/ca-certificates/*.crt``), named as Debian names it (spaces and commas to ``_``,
  parentheses to ``=``);
- ``HASH.N``: a link to it by its subject hash (``openssl x509 -hash``, as ``openssl rehash`` names it;
  one certificate once);
- ``ca-certificates.crt``: the bundle, every enabled certificate, each ending in a newline.

``python -m tools.image.certs ROOT`` (an mmdebstrap customize hook).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

CONF = "etc/ca-certificates.conf"
SHARED = "usr/share/ca-certificates"
LOCAL = "usr/local/share/ca-certificates"
CERTS_DIR = "etc/ssl/certs"
BUNDLE = "ca-certificates.crt"
HOOKS_DIR = "etc/ca-certificates/update.d"
HASH_LINK = re.compile(r"^[0-9a-f]{8}\.\d+$")


class CertStoreError(Exception):
    pass


def pem_name(crt: str) -> str:
    """Debian's name in /etc/ssl/certs for a certificate file (update-ca-certificates' ``add``)."""
    base = os.path.basename(crt)
    base = base[:-len(".crt")] if base.endswith(".crt") else base
    return base.replace(" ", "_").replace("(", "=").replace(")", "=").replace(",", "_") + ".pem"


def enabled(root: Path) -> list[str]:
    """The target paths of the certificates to trust: those the configuration lists (not ``!``-deselected, in
    its order), then the local ones (sorted)."""
    out = []
    for line in (root / CONF).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        if not (root / SHARED / line).is_file():
            raise CertStoreError(f"/{SHARED}/{line} is listed in /{CONF} but is not in the tree")
        out.append(f"/{SHARED}/{line}")
    local = root / LOCAL
    if local.is_dir():
        out += sorted(f"/{p.relative_to(root).as_posix()}" for p in local.rglob("*.crt") if p.is_file())
    return out


def hash_and_fingerprint(path: Path) -> tuple[str, str]:
    done = subprocess.run(["openssl", "x509", "-noout", "-hash", "-fingerprint", "-sha256", "-in", str(path)],
                          capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()         # "4042bcee", "sha256 Fingerprint=96:BC:..."
    if done.returncode != 0 or len(lines) < 2:
        raise CertStoreError(f"openssl cannot read {path}: {done.stderr.strip()[-300:]}")
    return lines[0], lines[1]


def write_store(root: Path) -> int:
    """Write the store into the tree at ``root``; returns the number of certificates in the bundle."""
    hooks = root / HOOKS_DIR
    if hooks.is_dir() and any(hooks.iterdir()):
        # a hook is a program of the tree: it has to run there (update-ca-certificates in a chroot)
        raise CertStoreError(f"/{HOOKS_DIR} holds hooks ({', '.join(sorted(p.name for p in hooks.iterdir()))}); "
                             "they must run in the tree")
    certs = root / CERTS_DIR
    certs.mkdir(parents=True, exist_ok=True)
    for link in certs.iterdir():               # a fresh store: the links it makes, made again
        if link.is_symlink() and (link.suffix == ".pem" or HASH_LINK.match(link.name)):
            link.unlink()
    bundle: list[str] = []
    seen: set[str] = set()
    by_hash: dict[str, int] = {}
    for target in enabled(root):
        pem = certs / pem_name(target)
        pem.symlink_to(target)
        source = root / target.lstrip("/")
        text = source.read_text()
        bundle.append(text if text.endswith("\n") else text + "\n")
        subject_hash, fingerprint = hash_and_fingerprint(source)
        if fingerprint in seen:
            continue
        seen.add(fingerprint)
        n = by_hash.get(subject_hash, 0)
        by_hash[subject_hash] = n + 1
        (certs / f"{subject_hash}.{n}").symlink_to(pem.name)
    tmp = certs / f"{BUNDLE}.new"
    tmp.write_text("".join(bundle))
    tmp.chmod(0o644)
    tmp.replace(certs / BUNDLE)
    return len(bundle)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tools.image.certs ROOT", file=sys.stderr)
        return 2
    try:
        count = write_store(Path(args[0]))
    except (CertStoreError, OSError) as exc:
        print(f"make image: certificate store: {exc}", file=sys.stderr)
        return 1
    print(f"make image: certificate store: {count} certificates, written by this machine's openssl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
