"""The CM4 image's parts made by the build machine's tools: slot A's venv and byte code for the target's
Python, and the C extensions cross-compiled for aarch64 (tools/image/hostbuild.py)."""
from __future__ import annotations

import importlib.util
import marshal
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from firmware.extensions import EXTENSIONS
from tools.image import hostbuild

REPO = Path(__file__).resolve().parents[2]
STATUS = """Package: python3.11-minimal
Status: install ok installed
Version: 3.11.2-6+deb12u9

Package: libpython3.11-stdlib
Status: install ok installed
Version: 3.11.2-6+deb12u9

Package: python3.11-dev
Status: deinstall ok config-files
Version: 3.11.1-1
"""


def wheel(path: Path, name: str, version: str, files: dict[str, str], tag: str = "py3-none-any",
          entry_points: str = "") -> Path:
    """A wheel as pip builds them: the files, then the .dist-info (METADATA, WHEEL, RECORD)."""
    info = f"{name}-{version}.dist-info"
    members = dict(files)
    members[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    members[f"{info}/WHEEL"] = f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {tag}\n"
    if entry_points:
        members[f"{info}/entry_points.txt"] = entry_points
    members[f"{info}/RECORD"] = "".join(f"{p},,\n" for p in [*members, f"{info}/RECORD"])
    out = path / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(out, "w") as z:
        for p, text in members.items():
            z.writestr(p, text)
    return out


def target_tree(root: Path, magic: bytes = importlib.util.MAGIC_NUMBER) -> Path:
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(STATUS)
    cache = root / "usr/lib/python3.11/__pycache__"
    cache.mkdir(parents=True)
    (cache / "os.cpython-311.pyc").write_bytes(magic + bytes(12))
    (root / "usr/share/python-wheels").mkdir(parents=True)
    wheel(root / "usr/share/python-wheels", "pip", "23.0.1", {"pip/__init__.py": "__version__ = '23.0.1'\n"})
    return root


def test_slot_venv_is_the_targets_interpreters_with_the_aarch64_wheels_and_their_byte_code(tmp_path):
    root = target_tree(tmp_path / "root")
    slot = root / "opt/openmeter/slots/.staging-a"
    (slot / "wheels").mkdir(parents=True)
    wheel(slot / "wheels", "demo", "1.0", {"demo/__init__.py": "ANSWER = 42\n"},
          tag="cp311-cp311-manylinux_2_28_aarch64", entry_points="[console_scripts]\ndemo = demo:main\n")
    hostbuild.make_venv(root, slot)
    venv = slot / "venv"
    cfg = dict(line.split(" = ", 1) for line in (venv / "pyvenv.cfg").read_text().splitlines())
    assert cfg == {"home": "/usr/bin", "include-system-site-packages": "true", "version": "3.11.2",
                   "executable": "/usr/bin/python3.11"}
    assert str((venv / "bin/python3").readlink()) == "/usr/bin/python3.11"
    assert str((venv / "bin/python").readlink()) == "python3"
    site = venv / "lib/python3.11/site-packages"
    assert (site / "demo/__init__.py").read_text() == "ANSWER = 42\n"
    assert (site / "pip/__init__.py").exists() and (site / "pip-23.0.1.dist-info").is_dir()
    # the wheels' scripts would name this machine's interpreter: none is left
    assert not (site / "bin").exists() and sorted(p.name for p in (venv / "bin").iterdir()) == [
        "python", "python3", "python3.11"]
    pyc = site / "demo/__pycache__/__init__.cpython-311.pyc"
    data = pyc.read_bytes()
    assert data[:4] == importlib.util.MAGIC_NUMBER
    code = marshal.loads(data[16:])
    assert code.co_filename == "/opt/openmeter/slots/.staging-a/venv/lib/python3.11/site-packages/demo/__init__.py"


def test_byte_code_for_a_target_python_of_another_format_is_refused(tmp_path):
    root = target_tree(tmp_path / "root", magic=b"\x6f\x0d\x0d\x0a")
    app = root / "opt/openmeter/slots/a/app"
    app.mkdir(parents=True)
    (app / "m.py").write_text("X = 1\n")
    with pytest.raises(hostbuild.HostBuildError, match="target's Python reads 6f0d0d0a"):
        hostbuild.compile_byte_code(root, app)
    assert not (app / "__pycache__").exists()


def test_headers_are_the_trees_own_python_version(tmp_path):
    root = target_tree(tmp_path / "root")
    debs = tmp_path / "debs"
    debs.mkdir()
    (debs / "libpython3.11-dev_3.11.1-1_arm64.deb").write_bytes(b"")
    with pytest.raises(hostbuild.HostBuildError, match=r"libpython3.11-dev_3.11.2-6\+deb12u9_arm64.deb is missing"):
        hostbuild.python_headers(root, debs, tmp_path / "headers")


HOST_HEADERS = Path("/usr/include/python3.11")


@pytest.mark.skipif(shutil.which(hostbuild.CROSS_CC) is None or shutil.which("dpkg-deb") is None
                    or not (HOST_HEADERS / "Python.h").exists(),
                    reason="needs gcc-aarch64-linux-gnu, dpkg-deb and Debian's libpython3.11-dev")
def test_extensions_are_cross_compiled_into_aarch64_modules(tmp_path):
    # A headers package laid out as Debian's arm64 libpython3.11-dev (the build machine's headers stand in
    # for it: both are LP64 little-endian CPython 3.11)
    pkg = tmp_path / "pkg"
    shutil.copytree(HOST_HEADERS, pkg / "usr/include/python3.11")
    arch = pkg / "usr/include/aarch64-linux-gnu/python3.11"
    arch.mkdir(parents=True)
    shutil.copy(next(Path("/usr/include").glob("*-linux-gnu/python3.11/pyconfig.h")), arch / "pyconfig.h")
    (pkg / "DEBIAN").mkdir()
    (pkg / "DEBIAN/control").write_text("Package: libpython3.11-dev\nVersion: 3.11.2-6+deb12u9\nArchitecture: arm64\n"
                                        "Maintainer: test <test@example.org>\nDescription: headers\n")
    debs = tmp_path / "debs"
    debs.mkdir()
    subprocess.run(["dpkg-deb", "-b", "-Zgzip", str(pkg), str(debs / "libpython3.11-dev_3.11.2-6+deb12u9_arm64.deb")],
                   check=True, capture_output=True)
    root = target_tree(tmp_path / "root")
    include = hostbuild.python_headers(root, debs, tmp_path / "headers")
    built = hostbuild.compile_extensions(REPO, include, tmp_path / "ext")
    names = sorted(p.relative_to(tmp_path / "ext").as_posix() for p in built)
    assert names == sorted(m.replace(".", "/") + ".cpython-311-aarch64-linux-gnu.so" for m in EXTENSIONS)
    assert all(hostbuild.elf_machine(p) == hostbuild.ELF_MACHINE_AARCH64 for p in built)
