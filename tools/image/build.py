"""Build a firmware image from a source tree: the application, its dependencies, systemd units, a manifest.

Reproducible: the same tree (and the same dependency files) gives the same bytes. Members are
sorted, owned by 0/0 with no user or group names, stamped with one mtime (``SOURCE_DATE_EPOCH``,
else the last git commit time, else 0), and the archive is uncompressed (see firmware.upgrade.image).

Dependencies (``--deps``):

- ``none``: application only; the slot runs on the interpreter and packages already on the meter.
  Used for development images and by the tests (no network needed).
- ``download``: ``pip download`` of the runtime and device requirements pinned in pyproject.toml,
  constrained by requirements.lock, as wheels for the CM4 (manylinux aarch64 up to glibc 2.36, CPython 3.11)
  where PyPI has them and as source archives otherwise, into a cache directory, then bundled.
- a directory: bundle the wheels and source archives already in it (an offline build).

Compiled C extensions (``--extensions DIR``): the ``*.so`` files under DIR, at their paths relative to the
application (``firmware/ipc/_atomics.cpython-311-aarch64-linux-gnu.so``), are added to ``app/``. The system
image build (``tools.image.system``) compiles them for aarch64 in the target's own tree, so a slot carries
its kernels signed like every other file and a meter never needs a compiler.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from firmware.upgrade.image import (
    FORMAT,
    MANIFEST_NAME,
    PRODUCT,
    ImageWriter,
    sha256_file,
    dump_manifest,
    parse_version,
)

APP_DIRS = ("firmware", "hal", "metrology", "tools", "boards")
APP_FILES = ("pyproject.toml", "setup.py", "requirements.lock", "Makefile", "README.md")
SYSTEMD_DIR = "firmware/systemd"
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "build", "dist"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".so", ".o", ".egg-info", ".tmp", "~")
DEP_SUFFIXES = (".whl", ".tar.gz", ".zip")
DEFAULT_BOARDS = ("cm4-ade9000", "sim")
# The CM4 runs Raspberry Pi OS bookworm (arm64): glibc 2.36, CPython 3.11. pip does not expand a
# manylinux_2_X tag to older glibc levels, so every level that runs there is listed (numpy 2.x ships
# manylinux_2_28 wheels only, older packages manylinux2014 = manylinux_2_17).
TARGET_PLATFORM = "manylinux_2_36_aarch64"
TARGET_PLATFORMS = tuple(f"manylinux_2_{minor}_aarch64" for minor in range(36, 16, -1)) + ("manylinux2014_aarch64",)
TARGET_PYTHON = "3.11"


@dataclass(frozen=True)
class Source:
    path: str       # path inside the slot
    origin: Path    # file on the build machine
    mode: int


def source_date_epoch(tree: Path) -> int:
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        return int(env)
    try:
        out = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%ct"], capture_output=True,
                             text=True, timeout=30, check=True).stdout.strip()
        return int(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return 0


def _skip(name: str) -> bool:
    return name.startswith(".") or name.endswith(SKIP_SUFFIXES)


def _walk(top: Path, prefix: str) -> Iterable[Source]:
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not _skip(d))
        for name in sorted(filenames):
            if _skip(name):
                continue
            origin = Path(dirpath) / name
            if not origin.is_file() or origin.is_symlink():
                continue
            rel = origin.relative_to(top).as_posix()
            yield Source(f"{prefix}/{rel}", origin, 0o755 if origin.stat().st_mode & 0o111 else 0o644)


def collect_application(tree: Path) -> list[Source]:
    found: list[Source] = []
    for d in APP_DIRS:
        if (tree / d).is_dir():
            found.extend(_walk(tree / d, f"app/{d}"))
    for f in APP_FILES:
        if (tree / f).is_file():
            found.append(Source(f"app/{f}", tree / f, 0o644))
    if (tree / SYSTEMD_DIR).is_dir():
        found.extend(_walk(tree / SYSTEMD_DIR, "systemd"))
    return found


def device_requirements(tree: Path) -> list[str]:
    """Runtime, device-only and build-system requirements, exactly as pinned in pyproject.toml.

    The build requirements (setuptools, wheel) let the meter build the source archives offline.
    """
    doc = tomllib.loads((tree / "pyproject.toml").read_text())
    project = doc["project"]
    return (list(project.get("dependencies", [])) + list(project.get("optional-dependencies", {}).get("device", []))
            + list(doc.get("build-system", {}).get("requires", [])))


def download_dependencies(tree: Path, dest: Path, python: str = sys.executable) -> Path:
    """``pip download`` each requirement as a CM4 wheel, or as source where no such wheel exists."""
    dest.mkdir(parents=True, exist_ok=True)
    lock = tree / "requirements.lock"
    for req in device_requirements(tree):
        binary = [python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--dest", str(dest),
                  "--only-binary=:all:", *(a for p in TARGET_PLATFORMS for a in ("--platform", p)),
                  "--python-version", TARGET_PYTHON,
                  "--implementation", "cp", "--abi", "cp" + TARGET_PYTHON.replace(".", ""), "-c", str(lock), req]
        if subprocess.run(binary, capture_output=True, timeout=600).returncode == 0:
            continue
        source = [python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--dest", str(dest),
                  "--no-binary=:all:", "--no-deps", req]
        done = subprocess.run(source, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"pip download {req}: neither an aarch64 (glibc <= 2.36) wheel nor a source archive "
                               f"could be fetched:\n{done.stderr.strip()}")
    return dest


def collect_extensions(directory: Path) -> list[Source]:
    """The compiled extension modules under ``directory``, each beside its C source in the application."""
    if not directory.is_dir():
        raise FileNotFoundError(f"extension directory {directory} does not exist")
    found = []
    for so in sorted(directory.rglob("*.so")):
        rel = so.relative_to(directory).as_posix()
        if rel.split("/")[0] not in APP_DIRS:
            raise ValueError(f"{so}: an extension module must sit under one of {', '.join(APP_DIRS)}")
        found.append(Source(f"app/{rel}", so, 0o755))
    if not found:
        raise FileNotFoundError(f"no compiled extension (*.so) under {directory}")
    return found


def collect_dependencies(directory: Path) -> list[Source]:
    if not directory.is_dir():
        raise FileNotFoundError(f"dependency directory {directory} does not exist")
    return [Source(f"wheels/{p.name}", p, 0o644) for p in sorted(directory.iterdir())
            if p.is_file() and p.name.endswith(DEP_SUFFIXES)]




def build_image(tree: str | Path, out: str | Path, *, version: str | None = None,
                boards: Iterable[str] = DEFAULT_BOARDS, min_from_version: str = "0.0.0",
                deps: str = "none", epoch: int | None = None,
                trust_update: dict[str, Any] | None = None,
                extensions: str | Path | None = None) -> dict[str, Any]:
    """Write an unsigned image of ``tree`` to ``out``; return its manifest."""
    tree = Path(tree).resolve()
    project = tomllib.loads((tree / "pyproject.toml").read_text())["project"]
    version = version or project["version"]
    parse_version(version)
    parse_version(min_from_version)
    epoch = source_date_epoch(tree) if epoch is None else int(epoch)
    sources = collect_application(tree)
    if deps == "download":
        sources += collect_dependencies(download_dependencies(tree, tree / "build" / "wheels-aarch64"))
    elif deps != "none":
        sources += collect_dependencies(Path(deps))
    if extensions is not None:
        sources += collect_extensions(Path(extensions))
    sources.sort(key=lambda s: s.path)
    files: list[dict[str, Any]] = []
    for s in sources:
        files.append({"path": s.path, "size": s.origin.stat().st_size, "sha256": sha256_file(s.origin),
                      "mode": s.mode})
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "product": PRODUCT,
        "version": version,
        "build_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)),
        "source_date_epoch": epoch,
        "boards": sorted(set(boards)),
        "min_from_version": min_from_version,
        "python": TARGET_PYTHON,
        "platform": TARGET_PLATFORM,
        "dependencies": "none" if deps == "none" else "bundled",
        "files": files,
    }
    if trust_update:
        manifest["trust"] = trust_update
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        writer = ImageWriter(f, epoch)
        writer.add_bytes(MANIFEST_NAME, dump_manifest(manifest))
        by_path = {s.path: s for s in sources}
        for entry in files:
            src = by_path[entry["path"]]
            with open(src.origin, "rb") as data:
                writer.add(f"payload/{entry['path']}", entry["size"], iter(lambda: data.read(1 << 20), b""),
                           entry["mode"])
        writer.close()
    os.replace(tmp, out)
    return manifest
