"""``make image``: the disk image a CM4 is flashed with, built from Debian packages and the signed firmware.

Steps (each timed on stdout):

1. **base**: ``mmdebstrap`` of Debian bookworm arm64 (main and non-free-firmware: the Raspberry Pi boot
   firmware) with the RT kernel, systemd, chrony, OpenSSH, Python 3.11 and the Debian Python packages of
   the device (python3-spidev, python3-libgpiod), without documentation or translations. The
   downloaded packages (and the arm64 Python headers step 2 compiles against, downloaded, not installed)
   are kept in ``CACHE/debs`` and the resulting tree in ``CACHE/base-KEY.tar`` (KEY: the package list and
   the mirrors), so a second build does not run mmdebstrap again; what mmdebstrap printed, each line
   timed, in ``CACHE/base-KEY.log``. Needs root and qemu-user's binfmt. The locked dependencies are
   downloaded as aarch64 wheels (``CACHE/wheels``) meanwhile.
2. **extensions**: the project's C extensions cross-compiled for aarch64 (``tools.image.hostbuild``).
3. **firmware**: the signed firmware image (``meter-image build``): the application with those compiled
   extensions and the locked dependencies as aarch64 wheels; the device's SPI binding is Debian's
   (python3-spidev), so the slot's venv sees the system packages.
4. **provision**: the ``meter`` account, the trust store, slot A made from the image (its venv and byte
   code made here by the build machine's tools, ``tools.image.hostbuild``: nothing is compiled or
   downloaded on the meter), ``meter.toml``, the OS files of ``tools/image/os`` and the units.
5. **disk**: the partitions of docs/upgrade.md (``tools.image.disk``), a ``.bmap`` and a ``.sha256``.

Only what must run on arm64 runs under qemu-user: the packages' maintainer scripts (in mmdebstrap), adding
the account, enabling the units and raspi-firmware's hook. Of what those scripts run, ``update-initramfs``
runs once, after every package, and the certificate store is written by this machine (``DEFERRED``).

The signing key: ``--key`` (the vendor's, on the signing machine), else a development key made once in
``build/keys/`` (the image then trusts only that key).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

from firmware.upgrade.installer import provision
from firmware.upgrade.settings import UpgradeSettings
from firmware.upgrade.trust import TrustStore
from tools.image import devicetree, disk, hostbuild
from tools.image.build import DEFAULT_BOARDS, build_image, download_dependencies
from tools.image.keys import keygen, load_private_key, sign_image

REPO = Path(__file__).resolve().parents[2]
OS_FILES = Path(__file__).resolve().parent / "os"
INITRAMFS = Path(__file__).resolve().parent / "initramfs"
CERTS = Path(__file__).resolve().parent / "certs.py"        # writes the tree's certificate store (in its key)
CACHE = Path(os.environ.get("OPENMETER_IMAGE_CACHE", "/var/cache/openmeter-image"))
SUITE = "bookworm"
COMPONENTS = "main,non-free-firmware"
PACKAGES = [
    # boot: the PREEMPT_RT kernel, its initramfs, the Raspberry Pi boot firmware (copies kernel, initrd and the
    # CM4 device trees to /boot/firmware and writes config.txt and cmdline.txt)
    "linux-image-rt-arm64", "initramfs-tools", "raspi-firmware", "e2fsprogs", "dosfstools",
    # the system
    "systemd", "systemd-sysv", "udev", "dbus", "kmod", "iproute2", "netbase", "tzdata", "chrony",
    "openssh-server", "ca-certificates", "sudo",
    # the meter's interpreter and the device's Python bindings from Debian
    "python3", "python3-venv", "python3-spidev", "python3-libgpiod",
]
# What the meter never reads: translated manual pages (the English ones stay: maintainer scripts register
# some as alternatives), documentation (the licences stay), translations.
DPKG_EXCLUDE = ["path-exclude=/usr/share/man/*", "path-include=/usr/share/man/man[1-9]/*",
                "path-exclude=/usr/share/info/*", "path-exclude=/usr/share/doc/*",
                "path-include=/usr/share/doc/*/copyright", "path-exclude=/usr/share/locale/*",
                "path-include=/usr/share/locale/locale.alias"]
# Bundled as sources by `meter-image build --deps download` where PyPI has no aarch64 wheel; in the system
# image Debian provides them instead (python3-spidev), or the board does not use them (RPi.GPIO: the CM4
# board's GPIO backend is gpiod, bundled as an aarch64 wheel).
FROM_DEBIAN = {"spidev": "python3-spidev", "RPi.GPIO": "(not used: gpiod)"}
UNITS = ["meter.service", "openmeter-firstboot.service", "systemd-networkd.service", "ssh.service",
         "chrony.service"]
METER_SETTINGS = [
    'meter.data_dir="/var/lib/openmeter"', 'meter.run_dir="/run/openmeter"',
    'upgrade.root="/opt/openmeter"', 'upgrade.state_dir="/var/lib/openmeter/upgrade"',
    'upgrade.trust_store="/var/lib/openmeter/trust"', 'upgrade.board="cm4-ade9000"',
    'upgrade.revenue_lock_file="/var/lib/openmeter/revenue_lock"', "upgrade.system_site_packages=true",
    "bacnet.enabled=true",
]


class Step:
    """Prints what is being done and how long each step took (the figures docs/cm4.md quotes)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.times: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str, what: str) -> Iterator[None]:
        t0 = time.monotonic()
        print(f"make image: [{t0 - self.start:6.0f} s] {name}: {what}", flush=True)
        yield
        self.times[name] = time.monotonic() - t0


def run(argv: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        out = (done.stdout + done.stderr).strip()
        raise SystemExit(f"make image: {what} failed ({' '.join(argv[:4])} ... exit {done.returncode}):\n{out[-3000:]}")
    return done


def apt_sources(texts: list[str] | None = None) -> list[str]:
    """The Debian mirrors this machine's apt uses (its deb822 ``*.sources``), as mmdebstrap source lines."""
    base, security = "http://deb.debian.org/debian", "http://deb.debian.org/debian-security"
    if texts is None:
        texts = [p.read_text() for p in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) if p.is_file()]
    for text in texts:
        for stanza in text.split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith("#"))
            uris, suites = fields.get("URIs", "").split(), fields.get("Suites", "").split()
            if uris and f"{SUITE}-security" in suites:
                security = uris[0]
            elif uris and SUITE in suites:
                base = uris[0]
    comps = COMPONENTS.replace(",", " ")
    return [f"deb {base} {SUITE} {comps}", f"deb {base} {SUITE}-updates {comps}",
            f"deb {security} {SUITE}-security {comps}"]


def check_host() -> None:
    if os.geteuid() != 0:
        raise SystemExit("make image: needs root (mmdebstrap and chroot into the arm64 tree): run `sudo make image`")
    missing = [t for t in ("mmdebstrap", "mkfs.ext4", "mkfs.vfat", "mcopy", "sfdisk", "bmaptool", "dpkg-deb",
                           hostbuild.CROSS_CC, *devicetree.TOOLS) if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"make image: missing {', '.join(missing)}; install the Debian packages mmdebstrap, "
                         "e2fsprogs, dosfstools, mtools, fdisk, bmap-tools, device-tree-compiler, gcc-aarch64-linux-gnu and "
                         "qemu-user-static")
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "status").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], capture_output=True)
    if not (binfmt / "qemu-aarch64").exists():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
    if not (binfmt / "qemu-aarch64").exists():
        raise SystemExit("make image: arm64 programs cannot run here: install qemu-user-static and binfmt-support "
                         "and enable qemu-aarch64 (update-binfmts --enable qemu-aarch64)")


def base_key() -> str:
    sources = apt_sources()
    initramfs = [(p.name, p.read_bytes()) for p in sorted(INITRAMFS.iterdir())]
    return hashlib.sha256(repr((SUITE, COMPONENTS, PACKAGES, DPKG_EXCLUDE, hostbuild.HEADERS_PACKAGE, sources,
                                initramfs, DEFERRED, CERTS.read_bytes())).encode()).hexdigest()[:16]


# Programs the packages' maintainer scripts run that take minutes under qemu-user: a no-op while the packages
# are installed, then restored and run once (docs/cm4.md): the certificate store, written by this machine's
# tools (tools.image.certs: update-ca-certificates ran three times, 230 s), and the initramfs, made once
# when every hook and module is in place (the kernel's hook and initramfs-tools' trigger each made it).
DEFERRED = ("/usr/sbin/update-ca-certificates", "/usr/sbin/update-initramfs")


def deferred_hooks() -> list[str]:
    """mmdebstrap options: each ``DEFERRED`` program diverted to a no-op after the essential packages, and
    restored once every package is configured; then the certificate store and the initramfs made."""
    hooks = []
    for path in DEFERRED:
        hooks += [f'--essential-hook=chroot "$1" dpkg-divert --quiet --local --rename --add {path}',
                  f"--essential-hook=printf '#!/bin/sh\\nexit 0\\n' >\"$1\"{path} && chmod 755 \"$1\"{path}"]
    for path in DEFERRED:
        hooks += [f'--customize-hook=rm -f "$1"{path} && chroot "$1" dpkg-divert --quiet --local --rename --remove '
                  f'{path}']
    return hooks + [f'--customize-hook=PYTHONPATH={REPO} {sys.executable} -m tools.image.certs "$1"',
                    '--customize-hook=chroot "$1" update-initramfs -c -k all']


def mmdebstrap(out: Path, log: Path) -> None:
    """The Debian tree as a tar at ``out``; what mmdebstrap prints goes to ``log``, each line with the seconds
    since its start (where the time of a build from nothing goes)."""
    argv = ["mmdebstrap", "--verbose", "--mode=root", "--arch=arm64", "--variant=minbase",
            f"--components={COMPONENTS}", "--include=" + ",".join(PACKAGES),
            *(f"--dpkgopt={o}" for o in DPKG_EXCLUDE),
            "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives",
            # before the kernel is installed: the initramfs holds only the modules that mount the root
            "--essential-hook=mkdir -p \"$1\"/etc/initramfs-tools/conf.d \"$1\"/etc/initramfs-tools/hooks",
            f"--essential-hook=copy-in {INITRAMFS}/openmeter.conf /etc/initramfs-tools/conf.d/",
            f"--essential-hook=copy-in {INITRAMFS}/openmeter-hook /etc/initramfs-tools/hooks/",
            "--essential-hook=mv \"$1\"/etc/initramfs-tools/hooks/openmeter-hook \"$1\"/etc/initramfs-tools/hooks/openmeter",
            *deferred_hooks(),
            f"--setup-hook=sync-in {CACHE}/debs /var/cache/apt/archives",
            # the arm64 Python headers the extensions are cross-compiled against: downloaded, not installed
            "--customize-hook=cd \"$1\"/var/cache/apt/archives && APT_CONFIG=\"$MMDEBSTRAP_APT_CONFIG\" "
            f"apt-get download -q {hostbuild.HEADERS_PACKAGE}",
            f"--customize-hook=sync-out /var/cache/apt/archives {CACHE}/debs",
            "--customize-hook=rm -f \"$1\"/var/cache/apt/archives/*.deb",
            "--skip=download/empty", "--format=tar", SUITE, str(out), *apt_sources()]
    t0 = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            f.write(f"{time.monotonic() - t0:7.1f} {line}")
        status = proc.wait()
    if status != 0:
        tail = log.read_text().splitlines()[-40:]
        raise SystemExit(f"make image: mmdebstrap failed (exit {status}); {log}:\n" + "\n".join(tail))


def base_tree(tree: Path) -> Path:
    """The Debian tree (cached as a tar keyed by the package list and mirrors), unpacked at ``tree``."""
    key = base_key()
    tar = CACHE / f"base-{key}.tar"
    if not tar.exists():
        (CACHE / "debs").mkdir(parents=True, exist_ok=True)
        tmp = tar.with_suffix(".tar.tmp")
        mmdebstrap(tmp, tar.with_suffix(".log"))
        tmp.replace(tar)
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    run(["tar", "-C", str(tree), "--numeric-owner", "-xpf", str(tar)], "unpacking the base tree")
    return tree


@contextlib.contextmanager
def mounted(root: Path) -> Iterator[Path]:
    """/proc, /sys and /dev of the host inside ``root`` while programs run there."""
    done: list[Path] = []
    try:
        for fs, args in (("proc", ["-t", "proc", "proc"]), ("sys", ["-t", "sysfs", "sysfs"]),
                         ("dev", ["--bind", "/dev"])):
            target = root / fs
            target.mkdir(exist_ok=True)
            run(["mount", *args, str(target)], f"mounting {target}")
            done.append(target)
        yield root
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-l", str(target)], capture_output=True)


def chroot(root: Path, *argv: str, what: str, timeout: int = 3600) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
    return run(["chroot", str(root), *argv], what, timeout=timeout, env=env)


def compile_extensions(root: Path, out: Path) -> list[Path]:
    """The C extensions for the tree's Python, cross-compiled on this machine."""
    try:
        include = hostbuild.python_headers(root, CACHE / "debs", CACHE / "work" / "python-headers")
        return hostbuild.compile_extensions(REPO, include, out)
    except hostbuild.HostBuildError as exc:
        raise SystemExit(f"make image: {exc}") from exc


def wheels(out: Path) -> tuple[Path, list[str]]:
    """The locked dependencies as aarch64 wheels (cached), and those Debian provides instead."""
    cache = CACHE / "wheels"
    stamp = cache / ".locked"
    lock = hashlib.sha256((REPO / "pyproject.toml").read_bytes() + (REPO / "requirements.lock").read_bytes())
    if not stamp.exists() or stamp.read_text() != lock.hexdigest():
        download_dependencies(REPO, cache)
        stamp.write_text(lock.hexdigest())
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    replaced = []
    for p in sorted(cache.iterdir()):
        if p.name.endswith(".whl"):
            shutil.copy(p, out / p.name)
        elif p.is_file() and not p.name.startswith("."):
            name = next((n for n in FROM_DEBIAN if p.name.lower().startswith(n.lower() + "-")), None)
            if name is None:
                raise SystemExit(f"make image: {p.name} has no aarch64 wheel for CPython 3.11 and no Debian "
                                 "package stands in for it (tools/image/system.py FROM_DEBIAN)")
            replaced.append(f"{name}: {FROM_DEBIAN[name]}")
    return out, replaced


def signing_key(path: str | None, build: Path) -> Path:
    if path:
        return Path(path)
    key = build / "keys" / "dev-image.key"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        keygen(key.with_suffix(""))
    return key


def firmware_image(version: str, deps: Path, ext: Path, key: Path, out: Path) -> Path:
    build_image(REPO, out, version=version, boards=DEFAULT_BOARDS, deps=str(deps), extensions=ext)
    sign_image(out, load_private_key(key, os.environ.get("METER_SIGNING_PASSPHRASE", "").encode() or None))
    return out


def account(root: Path) -> tuple[int, int]:
    for group in ("spi", "gpio"):
        chroot(root, "groupadd", "--system", "-f", group, what=f"adding group {group}")
    chroot(root, "useradd", "--system", "--user-group", "--home-dir", "/var/lib/openmeter", "--no-create-home",
           "--shell", "/bin/sh", "--groups", "spi,gpio,dialout,systemd-journal", "meter", what="adding the meter account")
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == "meter":
            return int(fields[2]), int(fields[3])
    raise SystemExit("make image: the meter account was not created")


def install_os_files(root: Path) -> None:
    for src in sorted(OS_FILES.rglob("*")):
        if src.is_file():
            dest = root / src.relative_to(OS_FILES)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest)
            os.chmod(dest, src.stat().st_mode & 0o777)
    os.chmod(root / "etc/sudoers.d/openmeter", 0o440)
    extra = root / "etc" / "default" / "raspi-firmware.openmeter"
    with open(root / "etc" / "default" / "raspi-firmware", "a") as f:
        f.write("\n" + extra.read_text())
    extra.unlink()


def provision_slot(root: Path, fw: Path, key: Path, uid_gid: tuple[int, int], version: str) -> None:
    data, slots = root / "var/lib/openmeter", root / "opt/openmeter"
    data.mkdir(parents=True, exist_ok=True)
    slots.mkdir(parents=True, exist_ok=True)
    settings = UpgradeSettings(root=slots, state_dir=data / "upgrade", trust_store=data / "trust",
                               board="cm4-ade9000", system_site_packages=True, run_dir=root / "run/openmeter")
    pub = key.with_suffix(".pub")
    if not pub.exists():
        raise SystemExit(f"make image: {pub} (the public key of {key}) is missing: the meter's trust store needs it")
    TrustStore(settings.trust_store).add(pub.read_text(), comment=key.stem)
    try:
        provision(settings, fw, venv_maker=lambda d: hostbuild.make_venv(root, d, system_site_packages=True))
        # The application's byte code, made once here rather than by the first start on the meter.
        hostbuild.compile_byte_code(root, slots / "slots" / "a" / "app")
    except hostbuild.HostBuildError as exc:
        raise SystemExit(f"make image: slot A: {exc}") from exc
    config = data / "meter.toml"
    run([sys.executable, "-m", "firmware.cli", "config", "set", "--config", str(config), "--user", "image build",
         "--reason", f"openmeter-cm4 {version}: device paths, the slots, BACnet/IP on", *METER_SETTINGS],
        "writing meter.toml")
    # Sealed by the meter itself at its first start, under the key made on it (firmware/config/seal.py); a
    # seal signed here would be under the build machine's key.
    with contextlib.suppress(FileNotFoundError):
        (data / "meter.toml.seal").unlink()
    for top in (data, slots):
        for dirpath, _dirs, files in os.walk(top):
            for name in [dirpath, *(os.path.join(dirpath, f) for f in files)]:
                os.lchown(name, *uid_gid)
    os.chmod(data, 0o700)
    good = slots / "good"
    systemd = root / "etc/systemd/system"
    for unit in (good / "systemd").glob("*.service"):
        shutil.copy(unit, systemd / unit.name)
    conf = root / "etc/systemd/system.conf.d"
    conf.mkdir(exist_ok=True)
    for c in (good / "systemd" / "system.conf.d").glob("*.conf"):
        shutil.copy(c, conf / c.name)


def finish_system(root: Path) -> None:
    chroot(root, "systemctl", "enable", *UNITS, what="enabling the units")
    # config.txt and cmdline.txt from the settings above (raspi-firmware's own kernel hook)
    chroot(root, "env", "DEB_MAINT_PARAMS=configure", "/etc/kernel/postinst.d/z50-raspi-firmware",
           what="writing config.txt and cmdline.txt")
    # Debian's CM4 device tree with the carrier's overlay, checked (SPI0 and the ADE9000, UART0, watchdog)
    try:
        for line in devicetree.install(root / "boot/firmware"):
            print(f"make image: device tree: {line}", flush=True)
    except devicetree.DeviceTreeError as exc:
        raise SystemExit(f"make image: device tree: {exc}") from exc
    # Per-unit secrets are made at first boot (openmeter-firstboot): none leaves the build machine.
    for p in (root / "etc/ssh").glob("ssh_host_*"):
        p.unlink()
    (root / "etc/machine-id").write_text("")
    with contextlib.suppress(FileNotFoundError):
        (root / "var/lib/dbus/machine-id").unlink()
    for d in ("var/cache/apt/archives", "var/lib/apt/lists", "tmp", "var/tmp"):
        for p in (root / d).glob("*"):
            if p.is_file() or p.is_symlink():
                p.unlink()
            elif p.is_dir() and p.name != "partial":
                shutil.rmtree(p)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make image", description=__doc__.split("\n")[0])
    p.add_argument("--version", default=None, help="firmware version (default: pyproject.toml's)")
    p.add_argument("--key", default=None, help="private key that signs the firmware (default: a development key "
                   "in build/keys/, made once)")
    p.add_argument("--build", default=str(REPO / "build"), help="output directory (default build/)")
    args = p.parse_args(argv)
    check_host()
    build = Path(args.build).resolve()
    # The arm64 tree is unpacked outside the repository (pip's and setuptools' file finders walk the tree).
    work = build / "image"
    tree = CACHE / "work" / "root"
    version = args.version or tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    step = Step()
    with ThreadPoolExecutor(1) as pool:
        # the wheels are downloaded while the Debian tree is made (network against qemu-user's CPU)
        downloading = pool.submit(wheels, work / "wheels")
        with step("base", f"Debian {SUITE} arm64 ({len(PACKAGES)} packages and their dependencies)"):
            root = base_tree(tree)
        deps, replaced = downloading.result()
    with step("extensions", "C extensions cross-compiled for aarch64"):
        ext = compile_extensions(root, work / "ext")
    with mounted(root):
        with step("firmware", f"signed firmware image {version}"):
            key = signing_key(args.key, build)
            fw = firmware_image(version, deps, work / "ext", key, build / f"openmeter-{version}.img")
        with step("provision", "meter account, slot A and its venv, meter.toml, units"):
            uid_gid = account(root)
            install_os_files(root)
            provision_slot(root, fw, key, uid_gid, version)
            finish_system(root)
    with step("disk", "partitions, file systems, bmap, SHA-256"):
        img = disk.write_image(root, build / f"openmeter-cm4-{version}.img")
    print(f"make image: {img} ({img.stat().st_size // 2**20} MiB, {disk.allocated(img) // 2**20} MiB written), "
          f"{len(ext)} C extensions for aarch64, {len(list(deps.glob('*.whl')))} wheels "
          f"({len(list(deps.glob('*aarch64*.whl')))} for aarch64, the others pure Python), "
          f"from Debian: {'; '.join(replaced) or 'none'}; firmware {fw.name}")
    print("make image: " + ", ".join(f"{k} {v:.0f} s" for k, v in step.times.items())
          + f"; total {time.monotonic() - step.start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
