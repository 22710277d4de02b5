"""A meter's upgrade area in a temporary directory: keys, trust store, a provisioned slot, images.

Shared by tests/integration/test_upgrade_*.py. Everything is real: images are built by the image
builder, signed with real Ed25519 keys, installed by the installer into real directories.
"""
from __future__ import annotations

import hashlib
import io
import itertools
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from firmware.upgrade.installer import Installer, provision
from firmware.upgrade.settings import UpgradeSettings
from firmware.upgrade.slots import SlotLayout
from firmware.upgrade.trust import TrustStore
from tests.unit.test_image_build import EPOCH, make_tree
from tools.image.build import APP_DIRS, APP_FILES, build_image
from tools.image.keys import keygen, load_private_key, sign_image

REPO = Path(__file__).resolve().parents[2]
_serial = itertools.count()


@dataclass
class UpgradeEnv:
    base: Path
    settings: UpgradeSettings
    key_path: Path
    pub_path: Path
    key_id: str

    @property
    def layout(self) -> SlotLayout:
        return SlotLayout(self.settings.root, self.settings.state_dir)

    def installer(self, **kw) -> Installer:
        return Installer(self.settings, **kw)

    def image(self, version: str, *, tree: Path | None = None, files: int = 0, sign: bool = True,
              key: Path | None = None, **build) -> Path:
        """Build (and sign) an image of ``tree`` or of a small generated tree with ``files`` extra files."""
        if tree is None:
            tree = make_tree(self.base / f"tree-{version}", version)
            extra = tree / "firmware" / "bulk"
            extra.mkdir(exist_ok=True)
            for i in range(files):
                (extra / f"f{i:04d}.py").write_bytes(hashlib.sha256(f"{version}{i}".encode()).digest() * 64)
        out = self.base / "images" / f"openmeter-{version}-{next(_serial)}.img"
        build.setdefault("epoch", EPOCH)
        build_image(tree, out, version=version, **build)
        if sign:
            sign_image(out, load_private_key(key or self.key_path))
        return out


def make_env(base: Path, provision_version: str | None = "0.1.0", **settings) -> UpgradeEnv:
    base.mkdir(parents=True, exist_ok=True)
    s = UpgradeSettings.under(base / "meter", **settings)
    key, pub, kid = keygen(base / "vendor")
    TrustStore(s.trust_store).add(pub.read_bytes(), "vendor test key")
    env = UpgradeEnv(base, s, key, pub, kid)
    if provision_version:
        provision(s, env.image(provision_version))
    return env


def snapshot(root: Path) -> dict[str, str]:
    """Every path under the slot root with its content hash or link target (the upgrade log excluded)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if rel.startswith("state/upgrade.db"):
                continue
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


def copy_repo(dest: Path, patch: dict[str, str] | None = None) -> Path:
    """The application part of this repository as committed (``git archive HEAD``; a plain copy of the
    working tree where git is unavailable), optionally with some files replaced."""
    dest.mkdir(parents=True, exist_ok=True)
    paths = [p for p in (*APP_DIRS, *APP_FILES) if (REPO / p).exists()]
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "HEAD", "--", *paths],
                                 capture_output=True, check=True, timeout=120).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
    except (OSError, subprocess.SubprocessError, tarfile.TarError):
        for d in APP_DIRS:
            if (REPO / d).is_dir():
                shutil.copytree(REPO / d, dest / d, ignore=shutil.ignore_patterns("__pycache__", "*.so"),
                                dirs_exist_ok=True)
        for f in APP_FILES:
            if (REPO / f).is_file():
                shutil.copy(REPO / f, dest / f)
    for rel, text in (patch or {}).items():
        (dest / rel).write_text(text)
    return dest
