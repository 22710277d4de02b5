"""Image build: reproducible bytes, canonical members, manifest contents."""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from firmware.upgrade.errors import UpgradeRefused
from firmware.upgrade.image import Image, parse_version
from tools.image.build import APP_DIRS, APP_FILES, build_image

REPO = Path(__file__).resolve().parents[2]
EPOCH = 1_700_000_000


def make_tree(root: Path, version: str = "0.1.0", marker: str = "") -> Path:
    """A small application tree shaped like the repository (pyproject, packages, systemd units)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(f'[project]\nname = "openmeter"\nversion = "{version}"\n'
                                         'dependencies = ["tomli-w==1.2.0"]\n')
    (root / "requirements.lock").write_text("tomli-w==1.2.0\n")
    pkg = root / "firmware"
    (pkg / "systemd").mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(f'"""firmware {version}{marker}"""\n')
    (pkg / "data.bin").write_bytes(bytes(range(256)) * 7)       # not a multiple of 512: exercises padding
    (pkg / "empty.txt").write_bytes(b"")
    (pkg / "systemd" / "meter.service").write_text("[Unit]\nDescription=test\n")
    (pkg / "__pycache__").mkdir(exist_ok=True)
    (pkg / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    script = root / "hal" / "tool.sh"
    script.parent.mkdir(exist_ok=True)
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    return root


def test_same_tree_builds_same_bytes_whatever_the_file_times(tmp_path):
    tree = make_tree(tmp_path / "tree")
    build_image(tree, tmp_path / "1.img", epoch=EPOCH)
    for p in tree.rglob("*"):
        os.utime(p, (EPOCH + 12345, EPOCH + 12345))
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy)                                   # new inodes, new directory order
    build_image(copy, tmp_path / "2.img", epoch=EPOCH)
    assert (tmp_path / "1.img").read_bytes() == (tmp_path / "2.img").read_bytes()
    build_image(copy, tmp_path / "3.img", epoch=EPOCH + 1)
    assert (tmp_path / "1.img").read_bytes() != (tmp_path / "3.img").read_bytes()


def test_repository_application_builds_reproducibly(tmp_path):
    # The application part of this very repository, copied (fresh mtimes) and built twice.
    copy = tmp_path / "repo"
    for d in APP_DIRS:
        if (REPO / d).is_dir():
            shutil.copytree(REPO / d, copy / d, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for f in APP_FILES:
        if (REPO / f).is_file():
            shutil.copy(REPO / f, copy / f)
    a = build_image(REPO, tmp_path / "a.img", epoch=EPOCH)
    b = build_image(copy, tmp_path / "b.img", epoch=EPOCH)
    assert a == b
    assert (tmp_path / "a.img").read_bytes() == (tmp_path / "b.img").read_bytes()
    assert any(f["path"] == "app/firmware/upgrade/image.py" for f in a["files"])


def test_members_are_canonical_and_sorted(tmp_path):
    tree = make_tree(tmp_path / "tree")
    manifest = build_image(tree, tmp_path / "x.img", epoch=EPOCH, boards=["sim"], min_from_version="0.0.5")
    with tarfile.open(tmp_path / "x.img", format=tarfile.USTAR_FORMAT) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names[0] == "manifest.json"
        assert names[1:] == sorted(names[1:])
        assert all(m.uid == 0 and m.gid == 0 and m.uname == "" and m.mtime == EPOCH for m in members)
        assert all(m.isreg() for m in members)                   # no directory entries
        assert not any("__pycache__" in n for n in names)
        assert tar.getmember("payload/app/hal/tool.sh").mode == 0o755
        assert tar.getmember("payload/app/firmware/data.bin").mode == 0o644
        assert tar.extractfile("manifest.json").read() == Image.open(tmp_path / "x.img").manifest.raw
    paths = [f["path"] for f in manifest["files"]]
    assert "systemd/meter.service" in paths and "app/firmware/systemd/meter.service" in paths
    data = (tree / "firmware" / "data.bin").read_bytes()
    entry = next(f for f in manifest["files"] if f["path"] == "app/firmware/data.bin")
    assert entry == {"path": "app/firmware/data.bin", "size": len(data), "mode": 0o644,
                     "sha256": hashlib.sha256(data).hexdigest()}
    assert manifest["boards"] == ["sim"] and manifest["min_from_version"] == "0.0.5"
    assert manifest["build_time"] == "2023-11-14T22:13:20Z"
    assert manifest["dependencies"] == "none"
    assert (tmp_path / "x.img").stat().st_size % tarfile.RECORDSIZE == 0


def test_dependency_directory_is_bundled_sorted(tmp_path):
    tree = make_tree(tmp_path / "tree")
    deps = tmp_path / "deps"
    deps.mkdir()
    for name in ("zz-1.0-py3-none-any.whl", "aa-2.0.tar.gz", "README.txt"):
        (deps / name).write_bytes(name.encode() * 100)
    manifest = build_image(tree, tmp_path / "d.img", epoch=EPOCH, deps=str(deps))
    wheels = [f["path"] for f in manifest["files"] if f["path"].startswith("wheels/")]
    assert wheels == ["wheels/aa-2.0.tar.gz", "wheels/zz-1.0-py3-none-any.whl"]
    assert manifest["dependencies"] == "bundled"
    Image.open(tmp_path / "d.img").scan()


def test_scan_delivers_exact_file_contents(tmp_path):
    tree = make_tree(tmp_path / "tree")
    build_image(tree, tmp_path / "x.img", epoch=EPOCH)
    got: dict[str, bytes] = {}

    class Sink:
        def __init__(self, path: str) -> None:
            self.path, self.parts = path, []

        def write(self, data: bytes) -> None:
            self.parts.append(data)

        def close(self) -> None:
            got[self.path] = b"".join(self.parts)

    Image.open(tmp_path / "x.img").scan(lambda e: Sink(e.path))
    assert got["app/firmware/data.bin"] == (tree / "firmware" / "data.bin").read_bytes()
    assert got["app/firmware/empty.txt"] == b""
    assert got["app/pyproject.toml"] == (tree / "pyproject.toml").read_bytes()
    assert "app/firmware/__pycache__/x.cpython-311.pyc" not in got


def test_versions_order_numerically():
    assert parse_version("0.10.0") > parse_version("0.9.9")
    assert parse_version("1.2") == (1, 2, 0)
    assert parse_version("0.1.0+source") == (0, 1, 0)
    with pytest.raises(ValueError, match="dotted integers"):
        parse_version("1.2.beta")


def test_not_an_image_is_refused_with_reason(tmp_path):
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"hello" * 300)
    with pytest.raises(UpgradeRefused) as err:
        Image.open(junk)
    assert err.value.reason in ("damaged", "format", "truncated")
