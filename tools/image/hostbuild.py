"""The parts of the CM4 image made by the build machine's own tools, not by arm64 programs under qemu-user.

Under qemu-user every arm64 instruction is emulated, tens of times slower than natively: the target's gcc
compiling the C extensions, and the target's pip unpacking and byte-compiling numpy, scipy and matplotlib
into slot A's venv, took most of a ``make image`` whose Debian tree was cached. None of it needs to run on
arm64:

- **extensions**: compiled by Debian's cross compiler (``gcc-aarch64-linux-gnu``) against the target's own
  Python headers (Debian's arm64 ``libpython3.11-dev``, downloaded with the tree's packages and only
  unpacked), through ``setup.py`` as on any machine, each module checked to be an aarch64 ELF file;
- **venv**: the layout ``python3 -m venv --system-site-packages`` writes for the target's
  ``/usr/bin/python3``, the aarch64 wheels unpacked into it by the build machine's pip (a wheel is a zip
  archive: nothing in it runs to install it);
- **byte code**: compiled by the build machine's CPython 3.11, whose byte-code format (its magic number) must
  be the target's: checked against a ``.pyc`` of the target's own standard library first.
"""
from __future__ import annotations

import compileall
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from firmware.extensions import EXTENSIONS
from tools.image.build import TARGET_PLATFORMS, TARGET_PYTHON

CROSS_CC = "aarch64-linux-gnu-gcc"
EXT_SUFFIX = f".cpython-{TARGET_PYTHON.replace('.', '')}-aarch64-linux-gnu.so"
HEADERS_PACKAGE = f"libpython{TARGET_PYTHON}-dev"
TARGET_INTERPRETER = f"/usr/bin/python{TARGET_PYTHON}"
ELF_MACHINE_AARCH64 = 183


class HostBuildError(Exception):
    pass


def _run(argv: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, **kw)
    if done.returncode != 0:
        raise HostBuildError(f"{what} failed (exit {done.returncode}):\n{(done.stdout + done.stderr).strip()[-3000:]}")
    return done


def package_version(root: Path, package: str) -> str:
    """The version of ``package`` installed in the tree at ``root`` (its dpkg status)."""
    for stanza in (root / "var/lib/dpkg/status").read_text().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line[0].isspace())
        if fields.get("Package") == package and fields.get("Status", "").endswith(" installed"):
            return fields["Version"]
    raise HostBuildError(f"{package} is not installed in {root}")


def python_headers(root: Path, debs: Path, dest: Path) -> list[Path]:
    """The target's Python headers: the arm64 ``libpython3.11-dev`` of the tree's own Python version, from the
    downloaded packages in ``debs``, unpacked at ``dest``. Returns the include directories (Debian's
    ``python3.11/pyconfig.h`` includes the architecture's as ``<aarch64-linux-gnu/python3.11/pyconfig.h>``)."""
    version = package_version(root, f"libpython{TARGET_PYTHON}-stdlib")
    name = f"{HEADERS_PACKAGE}_{version.replace(':', '%3a')}_arm64.deb"
    if not (debs / name).exists():
        raise HostBuildError(f"{debs / name} is missing: the Debian tree's build downloads it (tools/image/system.py)")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    _run(["dpkg-deb", "-x", str(debs / name), str(dest)], f"unpacking {name}")
    top = dest / "usr/include"
    if not (top / "aarch64-linux-gnu" / f"python{TARGET_PYTHON}" / "pyconfig.h").exists() \
            or not (top / f"python{TARGET_PYTHON}" / "Python.h").exists():
        raise HostBuildError(f"{name} holds no pyconfig.h for aarch64 or no Python.h")
    return [top / f"python{TARGET_PYTHON}", top]


def elf_machine(path: Path) -> int:
    head = path.read_bytes()[:20]
    if head[:4] != b"\x7fELF":
        return -1
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def compile_extensions(repo: Path, include: list[Path], out: Path) -> list[Path]:
    """The project's C extensions for aarch64 CPython 3.11, by ``setup.py build_ext`` with the cross compiler,
    written under ``out`` at their paths in the application."""
    if shutil.which(CROSS_CC) is None:
        raise HostBuildError(f"{CROSS_CC} is missing: install Debian's gcc-aarch64-linux-gnu")
    with tempfile.TemporaryDirectory(prefix="openmeter-ext-") as tmp:
        src = Path(tmp)
        shutil.copy(repo / "setup.py", src / "setup.py")
        for c in (p for d in ("firmware", "hal", "metrology") for p in (repo / d).rglob("*") if p.suffix in (".c", ".h")):
            dest = src / c.relative_to(repo)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(c, dest)
        # distutils takes CC and LDSHARED from the environment over the build machine's sysconfig, and
        # setuptools the module suffix; the target's headers come before the build machine's own.
        env = {**os.environ, "CC": CROSS_CC, "LDSHARED": f"{CROSS_CC} -shared", "SETUPTOOLS_EXT_SUFFIX": EXT_SUFFIX}
        env.pop("CFLAGS", None)
        env.pop("LDFLAGS", None)
        done = _run([sys.executable, "setup.py", "build_ext", "--inplace", "--include-dirs",
                     os.pathsep.join(str(p) for p in include)], "cross-compiling the C extensions", cwd=src, env=env)
        built = sorted(p for p in src.rglob(f"*{EXT_SUFFIX}") if "build" not in p.relative_to(src).parts)
        if len(built) != len(EXTENSIONS):
            raise HostBuildError(f"{len(built)} of {len(EXTENSIONS)} C extensions compiled for aarch64 "
                                 f"({', '.join(p.name for p in built) or 'none'}):\n{done.stderr[-3000:]}")
        wrong = [p.name for p in built if elf_machine(p) != ELF_MACHINE_AARCH64]
        if wrong:
            raise HostBuildError(f"not aarch64 code: {', '.join(wrong)}")
        shutil.rmtree(out, ignore_errors=True)
        result = []
        for so in built:
            dest = out / so.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(so, dest)
            result.append(dest)
    return result


def target_magic(root: Path) -> bytes:
    """The byte-code magic number of the target's Python, read from a ``.pyc`` of its standard library."""
    for pyc in sorted((root / "usr/lib" / f"python{TARGET_PYTHON}" / "__pycache__").glob("*.pyc")):
        return pyc.read_bytes()[:4]
    raise HostBuildError(f"no byte code in {root}/usr/lib/python{TARGET_PYTHON}/__pycache__ to compare with")


def check_byte_code(root: Path) -> None:
    host, target = importlib.util.MAGIC_NUMBER, target_magic(root)
    if host != target:
        raise HostBuildError(f"this machine's Python {sys.version.split()[0]} writes byte code {host.hex()}, the "
                             f"target's Python reads {target.hex()}: run make image with a CPython {TARGET_PYTHON}")


def compile_byte_code(root: Path, directory: Path) -> None:
    """``.pyc`` files for ``directory`` (inside the tree ``root``), named by their paths on the target."""
    check_byte_code(root)
    inside = "/" + directory.relative_to(root).as_posix()
    if not compileall.compile_dir(str(directory), ddir=inside, quiet=1, workers=0):
        raise HostBuildError(f"compiling the byte code of {inside} failed")


def make_venv(root: Path, slot_dir: Path, *, system_site_packages: bool = True) -> None:
    """``slot_dir/venv`` for the target's Python (``slot_dir`` lies inside the tree ``root``), with the aarch64
    wheels of ``slot_dir/wheels`` and the target's own pip installed, and their byte code."""
    version = package_version(root, f"python{TARGET_PYTHON}-minimal").split("-")[0]
    venv = slot_dir / "venv"
    site = venv / "lib" / f"python{TARGET_PYTHON}" / "site-packages"
    site.mkdir(parents=True)
    (venv / "lib64").symlink_to("lib")
    bin_dir = venv / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(TARGET_INTERPRETER)
    (bin_dir / "python").symlink_to("python3")
    (bin_dir / f"python{TARGET_PYTHON}").symlink_to("python3")
    (venv / "pyvenv.cfg").write_text(
        f"home = {Path(TARGET_INTERPRETER).parent}\n"
        f"include-system-site-packages = {'true' if system_site_packages else 'false'}\n"
        f"version = {version}\nexecutable = {TARGET_INTERPRETER}\n")
    # the target's pip (Debian's python3-pip-whl, which python3-venv's ensurepip installs): later slots are
    # made on the meter with it (firmware.upgrade.installer)
    pip = sorted((root / "usr/share/python-wheels").glob("pip-*.whl"))
    wheels = sorted(p for p in (slot_dir / "wheels").glob("*.whl")) + pip[-1:]
    platforms = [a for p in TARGET_PLATFORMS for a in ("--platform", p)]
    abi = "cp" + TARGET_PYTHON.replace(".", "")
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index", "--no-deps",
          "--no-compile", "--only-binary=:all:", "--target", str(site), *platforms, "--python-version", TARGET_PYTHON,
          "--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none", *map(str, wheels)],
         "unpacking the aarch64 wheels into slot A's venv")
    # pip --target puts the wheels' scripts under site-packages/bin, naming this machine's interpreter: the
    # meter runs its modules with venv/bin/python -m, never these scripts
    shutil.rmtree(site / "bin", ignore_errors=True)
    compile_byte_code(root, site)
