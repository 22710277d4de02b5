"""The CM4 disk image's parts that run without root: mirrors, compiled extensions in a firmware image,
partitions written without mounting, the isolated CPU of the read loop."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from firmware.services.acquisition import isolated_cpus
from firmware.upgrade.image import Image
from tests.unit.test_image_build import EPOCH, make_tree
from tools.image import disk
from tools.image.build import build_image, device_requirements
from tools.image.system import FROM_DEBIAN, apt_sources

DEB822 = """Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_mirrors_are_the_machines_own_with_the_firmware_component():
    lines = apt_sources([DEB822])
    assert lines == ["deb http://mirror.example/debian bookworm main non-free-firmware",
                     "deb http://mirror.example/debian bookworm-updates main non-free-firmware",
                     "deb http://mirror.example/debian-security bookworm-security main non-free-firmware"]


def test_compiled_extensions_are_signed_members_beside_their_source(tmp_path):
    tree = make_tree(tmp_path / "tree")
    ext = tmp_path / "ext" / "firmware" / "ipc"
    ext.mkdir(parents=True)
    (ext / "_atomics.cpython-311-aarch64-linux-gnu.so").write_bytes(b"\x7fELF aarch64")
    out = tmp_path / "fw.img"
    manifest = build_image(tree, out, deps="none", epoch=EPOCH, extensions=tmp_path / "ext")
    paths = {f["path"]: f for f in manifest["files"]}
    member = paths["app/firmware/ipc/_atomics.cpython-311-aarch64-linux-gnu.so"]
    assert member["mode"] == 0o755
    Image.open(out).scan()
    # without --extensions a built .so in the tree is never packed (it is the build machine's)
    (tree / "firmware" / "_host.so").write_bytes(b"x86")
    assert not any(p.endswith(".so") for p in (f["path"] for f in build_image(tree, out, deps="none",
                                                                               epoch=EPOCH)["files"]))


def test_an_extension_outside_the_application_is_refused(tmp_path):
    tree = make_tree(tmp_path / "tree")
    (tmp_path / "ext" / "elsewhere").mkdir(parents=True)
    (tmp_path / "ext" / "elsewhere" / "x.so").write_bytes(b"x")
    with pytest.raises(ValueError, match="must sit under"):
        build_image(tree, tmp_path / "fw.img", deps="none", epoch=EPOCH, extensions=tmp_path / "ext")


def test_isolated_cpus_are_read_from_the_kernels_list(tmp_path):
    f = tmp_path / "isolated"
    f.write_text("2-3,5\n")
    assert isolated_cpus(str(f)) == {2, 3, 5}
    f.write_text("\n")
    assert isolated_cpus(str(f)) == set()
    assert isolated_cpus(str(tmp_path / "absent")) == set()


@pytest.mark.skipif(any(shutil.which(t) is None for t in ("mkfs.ext4", "mkfs.vfat", "mcopy", "sfdisk", "bmaptool",
                                                          "debugfs")),
                    reason="needs e2fsprogs, dosfstools, mtools, fdisk and bmap-tools")
def test_disk_image_has_the_partitions_of_upgrade_md(tmp_path, monkeypatch):
    monkeypatch.setattr(disk, "SLOTS_MIB", 64)
    monkeypatch.setattr(disk, "DATA_MIB", 32)
    root = tmp_path / "work" / "root"
    for d in ("boot/firmware", "opt/openmeter/slots/a", "var/lib/openmeter", "etc"):
        (root / d).mkdir(parents=True)
    (root / "boot/firmware/cmdline.txt").write_text("root=PARTUUID=6f6d6574-02\n")
    (root / "opt/openmeter/slots/a/marker").write_text("slot a\n")
    (root / "var/lib/openmeter/meter.toml").write_text("[meter]\n")
    (root / "etc/hostname").write_text("meter\n")
    img = disk.write_image(root, tmp_path / "disk.img")
    table = json.loads(subprocess.run(["sfdisk", "-J", str(img)], capture_output=True, text=True,
                                      check=True).stdout)["partitiontable"]
    assert table["id"] == "0x6f6d6574"
    assert [p["type"] for p in table["partitions"]] == ["c", "83", "83", "83"]
    assert [p["size"] * 512 >> 20 for p in table["partitions"]][2:] == [64, 32]
    # each partition holds its own part of the tree, the root only empty mount points
    boot, _ = disk.partition_offset(img, 1)
    listing = subprocess.run(["mdir", "-b", "-i", f"{img}@@{boot}", "::/"], capture_output=True, text=True).stdout
    assert "cmdline.txt" in listing

    def ext4_ls(number: int, path: str) -> str:
        off, size = disk.partition_offset(img, number)
        part = tmp_path / f"p{number}"
        subprocess.run(["dd", f"if={img}", f"of={part}", "bs=1M", f"skip={off >> 20}", f"count={size >> 20}",
                        "status=none"], check=True)
        return subprocess.run(["debugfs", "-R", f"ls {path}", str(part)], capture_output=True, text=True).stdout

    assert "marker" in ext4_ls(3, "/slots/a")
    assert "meter.toml" in ext4_ls(4, "/")
    assert "hostname" in ext4_ls(2, "/etc") and "meter.toml" not in ext4_ls(2, "/var/lib/openmeter")
    assert (root / "opt/openmeter/slots/a/marker").exists()       # the tree is whole again afterwards
    assert Path(str(img) + ".bmap").exists()
    digest = Path(str(img) + ".sha256").read_text().split()
    assert digest[1] == "disk.img" and len(digest[0]) == 64


def test_cm4_md_says_where_each_python_dependency_of_the_image_comes_from():
    text = (Path(__file__).resolve().parents[2] / "docs" / "cm4.md").read_text()
    table = text[text.index("| dependency | in the image from |"):].split("\n\n", 1)[0]
    named = {n.strip().lower().replace("_", "-") for row in table.splitlines()[2:]
             for n in row.split("|")[1].split("(")[0].split(",")}
    wanted = {re.split(r"[<>=!~ \[]", r, maxsplit=1)[0].lower().replace("_", "-")
              for r in device_requirements(Path(__file__).resolve().parents[2])}
    assert wanted - named == set()
    assert {n.lower() for n in FROM_DEBIAN} <= named
