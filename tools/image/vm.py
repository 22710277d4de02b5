"""The image booted in ``qemu-system-aarch64 -M virt -cpu cortex-a72`` (``make image-test``).

The guest boots a sparse copy of the image file: its own kernel and initrd (read from its boot partition;
the virt machine has no Raspberry Pi boot firmware, so qemu loads them), its own root, slots and data
partitions on one virtio disk, with the command line of its cmdline.txt plus ``openmeter.board=qemu-virt``
(the board file of the emulated machine: the simulated ADE9000). The only change to the copy is what a user
does before a first boot: an ``authorized_keys`` file on the boot partition (docs/cm4.md).

Host ports (loopback only) reach the guest's SSH, Modbus TCP, HTTPS and BACnet/IP through qemu's user
network. Killing qemu (SIGKILL) is a power cut for the guest: what it had not written to its disk is lost.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.image import disk


@dataclass
class Ports:
    ssh: int = 10022
    modbus: int = 15020
    https: int = 18443
    bacnet: int = 47909

    def forwards(self) -> str:
        return (f"hostfwd=tcp:127.0.0.1:{self.ssh}-:22,hostfwd=tcp:127.0.0.1:{self.modbus}-:502,"
                f"hostfwd=tcp:127.0.0.1:{self.https}-:443,hostfwd=udp:127.0.0.1:{self.bacnet}-:47808")


@dataclass
class Guest:
    image: Path                     # the built image (never written)
    work: Path                      # the guest's disk copy, kernel, keys, console log
    ports: Ports = field(default_factory=Ports)
    cpus: int = 2
    memory_mib: int = 2048
    proc: subprocess.Popen | None = None
    started: float = 0.0
    boots: int = 0

    @property
    def disk(self) -> Path:
        return self.work / "disk.img"

    @property
    def key(self) -> Path:
        return self.work / "id_ed25519"

    @property
    def console(self) -> Path:
        return self.work / f"console-{self.boots}.log"

    def prepare(self) -> None:
        """A sparse copy of the image with an SSH key on its boot partition; the kernel, initrd, cmdline."""
        self.work.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "--sparse=always", "--reflink=auto", str(self.image), str(self.disk)], check=True)
        if not self.key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "make image-test", "-f",
                            str(self.key)], check=True)
        offset, _size = disk.partition_offset(self.disk, 1)
        fat = f"{self.disk}@@{offset}"
        subprocess.run(["mcopy", "-o", "-i", fat, str(self.key) + ".pub", "::/authorized_keys"], check=True)
        listing = subprocess.run(["mdir", "-b", "-i", fat, "::/"], capture_output=True, text=True, check=True).stdout
        names = [line.rsplit("/", 1)[-1].strip() for line in listing.splitlines()]
        for prefix, dest in (("vmlinuz-", "vmlinuz"), ("initrd.img-", "initrd.img"), ("cmdline.txt", "cmdline.txt")):
            name = next((n for n in names if n.startswith(prefix)), None)
            if name is None:
                raise SystemExit(f"make image-test: the image's boot partition has no {prefix}*; rebuild with "
                                 "`make image`")
            subprocess.run(["mcopy", "-o", "-i", fat, f"::/{name}", str(self.work / dest)], check=True)

    def configure(self, settings: list[str], reason: str) -> None:
        """``meter config set`` on the copy's data partition before it boots (loop-mounted: needs root), the
        files left owned by the meter account as the image made them."""
        offset, size = disk.partition_offset(self.disk, 4)
        mnt = self.work / "data-mnt"
        mnt.mkdir(exist_ok=True)
        subprocess.run(["mount", "-o", f"loop,offset={offset},sizelimit={size}", str(self.disk), str(mnt)],
                       check=True, capture_output=True)
        try:
            owner = mnt.stat()
            subprocess.run([sys.executable, "-m", "firmware.cli", "config", "set", "--config",
                            str(mnt / "meter.toml"), "--user", "image-test", "--reason", reason, *settings],
                           check=True, capture_output=True, timeout=120)
            # sealed by the guest under its own key at its start, as the image leaves it (tools/image/system.py)
            (mnt / "meter.toml.seal").unlink(missing_ok=True)
            for p in mnt.glob("meter.toml*"):
                os.chown(p, owner.st_uid, owner.st_gid)
        finally:
            subprocess.run(["umount", str(mnt)], check=True, capture_output=True)

    def cmdline(self) -> str:
        words = (self.work / "cmdline.txt").read_text().split()
        # the virt machine's serial port is a PL011 (ttyAMA0); the CM4's console is the screen (tty0)
        words = [w for w in words if not w.startswith("console=")]
        return " ".join(["console=ttyAMA0", *words, "openmeter.board=qemu-virt"])

    def start(self) -> None:
        self.boots += 1
        # one host thread per emulated CPU (MTTCG; qemu's default for this guest on x86-64, said outright)
        argv = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-accel", "tcg,thread=multi",
                "-smp", str(self.cpus),
                "-m", str(self.memory_mib), "-nographic", "-no-reboot",
                "-kernel", str(self.work / "vmlinuz"), "-initrd", str(self.work / "initrd.img"),
                "-append", self.cmdline(),
                "-drive", f"file={self.disk},format=raw,if=none,id=disk0,cache=unsafe",
                "-device", "virtio-blk-pci,drive=disk0",
                "-netdev", f"user,id=net0,{self.ports.forwards()}", "-device", "virtio-net-pci,netdev=net0",
                "-device", "virtio-rng-pci", "-device", "i6300esb",
                "-monitor", "none", "-serial", f"file:{self.console}"]
        self.started = time.monotonic()
        with open(self.work / "qemu.err", "ab") as err:      # qemu keeps its own copy of the descriptor
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                         start_new_session=True)

    def kill(self) -> None:
        """Power cut: SIGKILL to qemu."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ssh(self, command: str, timeout_s: float = 120.0, check: bool = True) -> subprocess.CompletedProcess:
        argv = ["ssh", "-q", "-i", str(self.key), "-p", str(self.ports.ssh), "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20",
                "meter@127.0.0.1", command]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
        if check and done.returncode != 0:
            raise RuntimeError(f"guest: `{command}` exit {done.returncode}: {(done.stdout + done.stderr).strip()[-1500:]}")
        return done

    def scp(self, src: Path, dest: str, timeout_s: float = 600.0) -> None:
        subprocess.run(["scp", "-q", "-i", str(self.key), "-P", str(self.ports.ssh), "-o", "StrictHostKeyChecking=no",
                        "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", str(src),
                        f"meter@127.0.0.1:{dest}"], check=True, timeout=timeout_s, capture_output=True)

    def wait_ssh(self, timeout_s: float) -> float:
        """Seconds from qemu's start until the guest's SSH answers a command."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"qemu exited during boot; the console: {self.tail()}")
            if _port_open(self.ports.ssh):
                try:
                    if self.ssh("true", timeout_s=60, check=False).returncode == 0:
                        return time.monotonic() - self.started
                except subprocess.TimeoutExpired:
                    pass
            time.sleep(3)
        raise RuntimeError(f"no SSH login within {timeout_s:.0f} s of boot; the console: {self.tail()}")

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.console.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no console output)"
        return "\n".join(text[-lines:])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0
