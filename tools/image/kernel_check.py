"""``make image-kernels``: the image's metrology C kernels against their numpy references, on aarch64.

The kernels are compiled for the CM4 by the cross compiler (NEON, no x86 clones) and the tests that hold them to
their references and to hostile sizes and samples (``TESTS``) run in ``make test`` on the build machine only. This
runs those tests in the arm64 tree that ``make image`` provisioned (``CACHE/work/root``), under qemu-user: the
image's own Python, numpy, scipy and extension, from slot A as ``meter.service`` starts it, with pytest copied in
from the build machine (pure Python) and removed after. Needs root (chroot) and qemu-user's binfmt, as
``make image`` does. Exits 1 when a test fails, is skipped (the extension not loaded) or does not run.
"""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.image.system import CACHE, REPO

TESTS = ("tests/unit/test_metrology_kernels.py", "tests/unit/test_metrology_kernels_hostile.py")
SUPPORT = ("tests/__init__.py", "tests/support/__init__.py", "tests/support/kernels.py")    # what the tests import
SLOT = "/opt/openmeter/slots/a"
# pytest and what it imports, all pure Python: copied from the build machine's environment
PYTEST_MODULES = ("pytest", "_pytest", "py", "pluggy", "iniconfig", "packaging", "pygments")
TIMEOUT_S = 1800


def pytest_site(dest: Path) -> None:
    """pytest's packages and their metadata (entry points, versions) from this Python's environment into ``dest``."""
    dest.mkdir(parents=True)
    for name in PYTEST_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise SystemExit(f"make image-kernels: {name} is not installed here (make venv installs it)")
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(origin, dest / origin.name)
        for info in origin.parent.parent.glob(f"{name}-*.dist-info") if origin.name == "__init__.py" else ():
            shutil.copytree(info, dest / info.name)


def main() -> int:
    root = CACHE / "work" / "root"
    if not (root / SLOT.lstrip("/") / "venv" / "bin" / "python").exists():
        print(f"make image-kernels: no provisioned tree in {root}: run make image first", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="kernel-check-", dir=root / "tmp"))
    inside = "/" + str(work.relative_to(root))
    try:
        pytest_site(work / "site")
        for test in TESTS + SUPPORT:
            (work / test).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / test, work / test)
        env = ["PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8", f"PYTHONPATH={SLOT}/app:{inside}/site",
               "PYTHONDONTWRITEBYTECODE=1"]
        python = f"{SLOT}/venv/bin/python"
        probe = subprocess.run(["chroot", str(root), "/usr/bin/env", "-i", *env, python, "-c",
                                "import platform, metrology._kernels as k; print(platform.machine(), k.BACKEND, "
                                "k.BACKEND_NOTE)"], capture_output=True, text=True, timeout=600)
        print(f"make image-kernels: {probe.stdout.strip() or probe.stderr.strip()[-2000:]}")
        if probe.returncode != 0 or not probe.stdout.startswith("aarch64 c "):
            print("make image-kernels: the image's Python does not load the C kernels on aarch64", file=sys.stderr)
            return 1
        t0 = time.monotonic()
        run = subprocess.run(["chroot", str(root), "/usr/bin/env", "-i", *env, f"PWD={inside}", "/bin/sh", "-c",
                              f"cd {inside} && exec {python} -m pytest -q -rs -p no:cacheprovider {' '.join(TESTS)}"],
                             capture_output=True, text=True, timeout=TIMEOUT_S)
        out = run.stdout + run.stderr
        summary = out.strip().splitlines()[-1] if out.strip() else "no output"
        print(f"make image-kernels: {summary} ({time.monotonic() - t0:.0f} s under qemu-user)")
        if run.returncode != 0 or "skipped" in summary or " passed" not in summary:
            print(out[-6000:], file=sys.stderr)
            return 1
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
