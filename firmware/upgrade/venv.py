"""A slot's Python environment: ``venv/`` with the image's bundled wheels, made while the slot is staged.

A wheel the running (committed) slot already carries, by file name and SHA-256 in both signed manifests,
is not installed again: its installed files are hard-linked from the running slot's ``site-packages``
(copied where the file system refuses a link). pip never edits an installed file in place (it unlinks
before it writes, and byte code is written to a new file and renamed), so the two slots share those files
safely, and removing either slot later leaves the other whole. Only the wheels that differ are installed
with pip, offline, from the slot's own ``wheels/``; the running slot's distributions those replace or
that the new image no longer bundles are left out. On a CM4 an upgrade whose lock is unchanged then
takes seconds instead of pip unpacking and byte-compiling numpy, scipy and matplotlib again.

The venv is made inside the staging directory and renamed with it (``firmware.upgrade.installer``): a
power cut before the rename leaves the running slot as it was.
"""
from __future__ import annotations

import csv
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from firmware.upgrade.errors import UpgradeFailed, UpgradeRefused
from firmware.upgrade.image import MANIFEST_NAME, parse_manifest

WHEELS_DIR = "wheels"


def canonical(name: str) -> str:
    """A distribution's name as pip compares names (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name(filename: str) -> str:
    """The distribution a wheel installs (``numpy-2.4.6-cp311-...whl`` -> ``numpy``)."""
    return canonical(filename.split("-", 1)[0])


def bundled_wheels(slot_dir: Path) -> dict[str, str]:
    """File name -> SHA-256 of the dependencies in the slot's signed manifest (empty without a manifest)."""
    try:
        manifest = parse_manifest((slot_dir / MANIFEST_NAME).read_bytes())
    except (OSError, UpgradeRefused):       # a slot whose manifest does not read shares nothing
        return {}
    prefix = WHEELS_DIR + "/"
    return {e.path[len(prefix):]: e.sha256 for e in manifest.files
            if e.path.startswith(prefix) and "/" not in e.path[len(prefix):]}


def site_packages(venv: Path) -> Path | None:
    found = sorted(venv.glob("lib/python*/site-packages"))
    return found[0] if found else None


def installed(site: Path) -> dict[str, Path]:
    """Canonical name -> ``.dist-info`` directory of each distribution installed in ``site``."""
    out = {}
    for info in site.glob("*.dist-info"):
        name = info.name[:-len(".dist-info")].rsplit("-", 1)[0]
        out[canonical(name)] = info
    return out


def _left_out(site: Path, infos: list[Path]) -> tuple[set[str], set[tuple[str, str]]]:
    """The files of these distributions (paths relative to ``site``), and their modules' byte code as
    (directory, module) pairs: the host build compiles byte code after pip, so RECORD may not list it."""
    files: set[str] = set()
    modules: set[tuple[str, str]] = set()
    for info in infos:
        for dirpath, _dirs, names in os.walk(info):
            files.update(os.path.relpath(os.path.join(dirpath, n), site) for n in names)
        try:
            with open(info / "RECORD", newline="") as f:
                rows = list(csv.reader(f))
        except OSError:
            rows = []
        for row in rows:
            rel = os.path.normpath(row[0]) if row else ""
            if not rel or rel.startswith(".."):
                continue
            files.add(rel)
            if rel.endswith(".py"):
                modules.add((os.path.dirname(rel), os.path.basename(rel)[:-3]))
    return files, modules


def link_tree(src: Path, dest: Path, files: set[str], modules: set[tuple[str, str]]) -> int:
    """Hard-link (else copy) every file under ``src`` to the same path under ``dest``, except ``files`` and
    the byte code of ``modules``; returns how many files were placed."""
    placed = 0
    for dirpath, dirnames, names in os.walk(src):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, src)
        in_cache = os.path.basename(rel_dir) == "__pycache__"
        for name in sorted(names):
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel in files or (in_cache and (os.path.dirname(rel_dir), name.split(".", 1)[0]) in modules):
                continue
            origin, target = os.path.join(dirpath, name), dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if os.path.islink(origin):
                os.symlink(os.readlink(origin), target)
            else:
                try:
                    os.link(origin, target)
                except OSError:             # another file system, or not allowed to link: a copy
                    shutil.copy2(origin, target)
            placed += 1
    return placed


def reuse_running(slot_dir: Path, running: Path, site: Path) -> set[str]:
    """Fill ``site`` (the new venv's) from the running slot ``running``: every distribution it has except
    those of wheels that differ or are gone. Returns the file names of the new slot's wheels now in place."""
    old_site = site_packages(running / "venv")
    new, old = bundled_wheels(slot_dir), bundled_wheels(running)
    if old_site is None or not new:
        return set()
    dists = installed(old_site)
    same = {w for w, digest in new.items() if old.get(w) == digest and wheel_name(w) in dists}
    # a distribution replaced (by another wheel of its name) or no longer bundled is left out
    stale = {wheel_name(w) for w in set(old) - same} | {wheel_name(w) for w in set(new) - same}
    files, modules = _left_out(old_site, [dists[n] for n in sorted(stale) if n in dists])
    link_tree(old_site, site, files, modules)
    return same


def make_venv(slot_dir: Path, python: str = sys.executable, *, system_site_packages: bool = False,
              running: Path | None = None) -> list[str]:
    """``slot_dir/venv`` with the image's bundled wheels (and source archives, built here); returns the
    file names pip installed. ``running``: the committed slot, whose installed wheels of the same name and
    hash are linked instead of installed again.

    Offline: pip sees only the slot's own ``wheels/``. Only ``venv/bin/python -m ...`` is used (script
    shebangs keep the staging path). ``system_site_packages`` lets the venv see the system's own Python
    packages (on the CM4 image: Debian's python3-spidev). The CM4 image's first slot is made by the image
    build instead (``tools.image.hostbuild``).
    """
    def run(argv: list[str], what: str) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            raise UpgradeFailed(f"{what} failed: {done.stderr.strip()[-800:]}")

    deps = sorted(p for p in (slot_dir / WHEELS_DIR).glob("*") if p.is_file())
    venv = slot_dir / "venv"
    # The installer's own pip, aimed at the new interpreter (pip --python), where it has one: no pip copy
    # per slot. Otherwise the new venv's pip: the running slot's, or its own (ensurepip, offline).
    own_pip = _has_pip(python)
    reusing = running is not None and site_packages(running / "venv") is not None and bool(deps)
    flags = (["--without-pip"] if own_pip or reusing or not deps else []) + (
        ["--system-site-packages"] if system_site_packages else [])
    run([python, "-m", "venv", *flags, str(venv)], "creating the slot's Python environment")
    if not deps:
        return []
    same: set[str] = set()
    if reusing:
        assert running is not None
        site = site_packages(venv)
        if site is None:
            raise UpgradeFailed(f"{venv} has no site-packages directory")
        same = reuse_running(slot_dir, running, site)
    todo = [str(p) for p in deps if p.name not in same]
    if not todo:
        return []
    new_python = f"{venv}/bin/python"
    if not own_pip and reusing and subprocess.run([new_python, "-c", "import pip"], capture_output=True,
                                                  timeout=600).returncode != 0:
        run([new_python, "-m", "ensurepip", "--default-pip"], "installing pip into the slot's Python environment")
    pip = [python, "-m", "pip", "--python", new_python] if own_pip else [new_python, "-m", "pip"]
    run([*pip, "install", "--quiet", "--disable-pip-version-check", "--no-index",
         "--find-links", str(slot_dir / WHEELS_DIR), "--no-deps", *todo], "installing the bundled dependencies")
    return [Path(p).name for p in todo]


def _has_pip(python: str) -> bool:
    if python == sys.executable:
        return importlib.util.find_spec("pip") is not None
    return subprocess.run([python, "-c", "import pip"], capture_output=True, timeout=60).returncode == 0
