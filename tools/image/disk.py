"""The disk image: the partitions of docs/upgrade.md made from a finished system tree, without loop devices.

| partition | size | file system | mount |
|---|---|---|---|
| 1 | 256 MiB | FAT32 ``RASPIFIRM`` | ``/boot/firmware`` (boot firmware, kernel, initrd, device trees, config.txt) |
| 2 | the system plus a margin | ext4 ``om-root`` | ``/`` (read-only) |
| 3 | 2 GiB | ext4 ``om-slots`` | ``/opt/openmeter`` (slots a and b, ``current``, ``good``) |
| 4 | 512 MiB | ext4 ``om-data`` | ``/var/lib/openmeter`` (configuration, revenue records, logs, upgrade state) |

MBR with the disk identifier 0x6f6d6574, so ``PARTUUID=6f6d6574-0N`` names each partition on the CM4's eMMC
and on the emulator's virtio disk alike. Each file system is written in place at its offset
(``mkfs.ext4 -d``, ``mkfs.vfat --offset`` and ``mcopy``): no mount, no root needed for this step. The image
file is sparse; its ``.bmap`` lists the blocks that hold data, so ``bmaptool copy`` writes only those.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20
DISK_ID = "0x6f6d6574"
FIRST_MIB = 4                   # the first partition starts at 4 MiB (eMMC erase-block alignment)
BOOT_MIB, SLOTS_MIB, DATA_MIB = 256, 2048, 512
ROOT_MARGIN = 1.25              # the root is read-only: room for a kernel update done by a new image, no more


@dataclass(frozen=True)
class Part:
    name: str
    mount: str          # path inside the tree whose content goes to this partition
    mib: int
    start_mib: int


def _run(argv: list[str], what: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"make image: {what} failed ({argv[0]} exit {done.returncode}):\n"
                         f"{(done.stdout + done.stderr).strip()[-2000:]}")
    return done.stdout


def tree_bytes(top: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(top):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.lstat(p).st_blocks * 512
    return total


def _owner(path: Path) -> str:
    st = path.stat()
    return f"{st.st_uid}:{st.st_gid}"


def split_tree(root: Path, parts_dir: Path) -> dict[str, Path]:
    """Move each separate partition's content out of the root tree, leaving its empty mount point."""
    shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir(parents=True)
    out = {}
    for name, mount in (("boot", "boot/firmware"), ("slots", "opt/openmeter"), ("data", "var/lib/openmeter")):
        src, dest = root / mount, parts_dir / name
        st = src.stat()
        shutil.move(str(src), str(dest))
        src.mkdir()
        os.chown(src, st.st_uid, st.st_gid)
        os.chmod(src, st.st_mode & 0o7777)
        out[name] = dest
    out["root"] = root
    return out


def write_image(root: Path, out: Path) -> Path:
    """Write ``out`` (sparse), ``out.bmap`` and ``out.sha256`` from the system tree ``root``."""
    parts_dir = root.parent / "parts"
    trees = split_tree(root, parts_dir)
    try:
        root_mib = int(tree_bytes(root) * ROOT_MARGIN / MIB) + 128
        root_mib += -root_mib % 64
        layout, start = [], FIRST_MIB
        for name, mib in (("boot", BOOT_MIB), ("root", root_mib), ("slots", SLOTS_MIB), ("data", DATA_MIB)):
            layout.append(Part(name, name, mib, start))
            start += mib
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.unlink(missing_ok=True)
        with open(tmp, "wb") as new:
            new.truncate((start + 1) * MIB)
        table = [f"label: dos\nlabel-id: {DISK_ID}\nunit: sectors\n"]
        for p in layout:
            kind = "c, bootable" if p.name == "boot" else "83"
            table.append(f"start={p.start_mib * MIB // 512}, size={p.mib * MIB // 512}, type={kind}\n")
        done = subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(tmp)], input="".join(table),
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise SystemExit(f"make image: sfdisk failed: {done.stderr.strip()}")
        for p in layout:
            offset = p.start_mib * MIB
            if p.name == "boot":
                # one sector per cluster: FAT32 needs 65525 clusters at least, which mtools holds it to
                _run(["mkfs.vfat", "-F", "32", "-s", "1", "-n", "RASPIFIRM", f"--offset={offset // 512}", str(tmp),
                      str(p.mib * 1024)], "mkfs.vfat")
                files = sorted(str(f) for f in trees["boot"].iterdir())
                _run(["mcopy", "-s", "-p", "-m", "-i", f"{tmp}@@{offset}", *files, "::/"], "copying the boot files")
            else:
                label = f"om-{p.name}"
                _run(["mkfs.ext4", "-F", "-q", "-L", label, "-E", f"offset={offset},root_owner={_owner(trees[p.name])}",
                      "-d", str(trees[p.name]), str(tmp), f"{p.mib}M"], f"mkfs.ext4 {label}")
        tmp.replace(out)
    finally:
        # put the partitions' content back, so the tree stays whole for inspection
        for name, mount in (("boot", "boot/firmware"), ("slots", "opt/openmeter"), ("data", "var/lib/openmeter")):
            src = parts_dir / name
            if src.exists():
                (root / mount).rmdir()
                shutil.move(str(src), str(root / mount))
    _run(["bmaptool", "-q", "create", "-o", str(out) + ".bmap", str(out)], "bmaptool create")
    digest = hashlib.sha256()
    with open(out, "rb") as img:
        for block in iter(lambda: img.read(8 * MIB), b""):
            digest.update(block)
    Path(str(out) + ".sha256").write_text(f"{digest.hexdigest()}  {out.name}\n")
    return out


def allocated(path: Path) -> int:
    """Bytes that hold data in a sparse file (what bmaptool writes)."""
    return path.stat().st_blocks * 512


def partition_offset(image: Path, number: int) -> tuple[int, int]:
    """(offset, size) in bytes of partition ``number`` of ``image``, read from its partition table."""
    out = _run(["sfdisk", "-J", str(image)], "reading the partition table")

    parts = json.loads(out)["partitiontable"]["partitions"]
    p = parts[number - 1]
    return p["start"] * 512, p["size"] * 512
